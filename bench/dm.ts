// DM speed: seconds per iteration on MNIST-shaped data, IPC 10, real batch 256
// per class, DSA on, ConvNet-3: Distillery's DM step (all classes batched,
// chunked no-grad real pass) vs a PyTorch loop of the reference structure
// (bench/dm_torch.py: a forward per class, per-class augmentation), alternating
// rounds in one run. Medians over all measured iterations.
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
import { median, numberFlag } from './util.js';

function main(): void {
  const iterations = numberFlag('--iterations', 10);
  const rounds = numberFlag('--rounds', 2);
  const ipc = 10;
  const batchReal = 256;
  const dataset = loadDataset('mnist');
  const gen = new E.Generator(0);
  const synthetic = SyntheticSet.create(dataset, ipc, 'real', gen);
  const opt = new E.SGD(synthetic.learnable, { lr: 1, momentum: 0.5 });
  const config = dm.schema.parse({ batchReal });
  const ctx = contextWithOptimizer({ dataset, synthetic, gen, model: 'ConvNet' }, opt);
  const python = '/usr/bin/python3';
  const hasTorch = spawnSync(python, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
  const script = fileURLToPath(new URL('../../bench/dm_torch.py', import.meta.url));
  const tuned = { ...process.env, MALLOC_MMAP_MAX_: '0', MALLOC_TRIM_THRESHOLD_: '68719476736' };
  const ours: number[] = [];
  const ref: number[] = [];
  for (let round = 0; round < rounds; round++) {
    for (let it = 0; it < iterations + 2; it++) {
      const t0 = performance.now();
      dm.step(ctx, config, it);
      if (it >= 2) ours.push((performance.now() - t0) / 1000);
    }
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
    `DM iteration, MNIST IPC ${ipc}, real batch ${batchReal} per class, DSA, ConvNet-3; median seconds over ${ours.length} iterations`,
  );
  console.log('| run | s / iteration |');
  console.log('|---|---:|');
  console.log(`| Distillery (classes batched) | ${median(ours).toFixed(3)} |`);
  if (hasTorch) {
    console.log(`| PyTorch, reference structure (tuned malloc) | ${median(ref).toFixed(3)} |`);
    console.log(`| ratio (target <= 0.50) | ${(median(ours) / median(ref)).toFixed(2)} |`);
  }
}

main();
