// DM speed: seconds per iteration on MNIST-shaped data, IPC 10, real batch 256
// per class, DSA on, ConvNet-3: Distillery's DM step (all classes batched,
// chunked no-grad real pass) vs a PyTorch loop of the reference structure
// (bench/dm_torch.py: a forward per class, per-class augmentation), alternating
// rounds in one run. Medians over all measured iterations. Ours runs with the
// real pass in float32 and, where the CPU has native bfloat16 (the default
// there), in bfloat16 channels-last.
//
//   npm run bench:dm [-- --iterations 10 --rounds 2]
import { execFileSync, spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import * as E from '../src/engine/index.js';
import { loadDataset } from '../src/data/registry.js';
import { contextWithOptimizer } from '../src/distill/method.js';
import { dm } from '../src/distill/methods/dm.js';
import { SyntheticSet } from '../src/distill/synthetic.js';
import { median, numberFlag, realPrecisions } from './util.js';

function main(): void {
  const iterations = numberFlag('--iterations', 10);
  const rounds = numberFlag('--rounds', 2);
  const ipc = 10;
  const batchReal = 256;
  const dataset = loadDataset('mnist');
  const gen = new E.Generator(0);
  const synthetic = SyntheticSet.create(dataset, ipc, 'real', gen);
  const opt = new E.SGD(synthetic.learnable, { lr: 1, momentum: 0.5 });
  const precisions = realPrecisions();
  const configs = precisions.map((realDtype) => dm.schema.parse({ batchReal, realDtype }));
  const ctx = contextWithOptimizer({ dataset, synthetic, gen, model: 'ConvNet' }, opt);
  const python = '/usr/bin/python3';
  const hasTorch = spawnSync(python, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
  const script = fileURLToPath(new URL('../../bench/dm_torch.py', import.meta.url));
  const tuned = { ...process.env, MALLOC_MMAP_MAX_: '0', MALLOC_TRIM_THRESHOLD_: '68719476736' };
  const ours: number[][] = precisions.map(() => []);
  const ref: number[] = [];
  for (let round = 0; round < rounds; round++) {
    configs.forEach((config, i) => {
      for (let it = 0; it < iterations + 2; it++) {
        const t0 = performance.now();
        dm.step(ctx, config, it);
        if (it >= 2) ours[i].push((performance.now() - t0) / 1000);
      }
    });
    if (hasTorch) {
      const out = execFileSync(
        python,
        [script, String(iterations), String(availableParallelism()), String(ipc), String(batchReal)],
        { env: tuned, encoding: 'utf8' },
      );
      ref.push(...(JSON.parse(out) as number[]));
    }
  }
  console.log(
    `DM iteration, MNIST IPC ${ipc}, real batch ${batchReal} per class, DSA, ConvNet-3; median seconds over ${ours[0].length} iterations`,
  );
  console.log(`| run | s / iteration |${hasTorch ? ' ratio to PyTorch (target <= 0.50) |' : ''}`);
  console.log(`|---|---:|${hasTorch ? '---:|' : ''}`);
  precisions.forEach((p, i) => {
    const ratio = hasTorch ? ` ${(median(ours[i]) / median(ref)).toFixed(2)} |` : '';
    console.log(`| Distillery (classes batched), real pass ${p} | ${median(ours[i]).toFixed(3)} |${ratio}`);
  });
  if (hasTorch)
    console.log(`| PyTorch, reference structure (tuned malloc) | ${median(ref).toFixed(3)} | 1 |`);
}

main();
