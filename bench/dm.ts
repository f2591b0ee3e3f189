// DM speed: seconds per iteration on MNIST-shaped data, IPC 10, real batch 256
// per class, DSA on, ConvNet-3: Distillery's DM step (all classes batched,
// chunked no-grad real pass) vs a PyTorch loop of the reference structure
// (bench/dm_torch.py: a forward per class, per-class augmentation), alternating
// rounds in one run. Medians over all measured iterations. Both run the real pass
// in float32 and, where the CPU has native bfloat16, in bfloat16 channels-last
// (PyTorch: manual casts of the network and inputs); each ratio compares equal precision.
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
  const ref: number[][] = precisions.map(() => []);
  for (let round = 0; round < rounds; round++) {
    configs.forEach((config, i) => {
      for (let it = 0; it < iterations + 2; it++) {
        const t0 = performance.now();
        dm.step(ctx, config, it);
        if (it >= 2) ours[i].push((performance.now() - t0) / 1000);
      }
    });
    if (hasTorch)
      precisions.forEach((p, i) => {
        const args = [script, iterations, availableParallelism(), ipc, batchReal, p].map(String);
        ref[i].push(
          ...(JSON.parse(execFileSync(python, args, { env: tuned, encoding: 'utf8' })) as number[]),
        );
      });
  }
  console.log(
    `DM iteration, MNIST IPC ${ipc}, real batch ${batchReal} per class, DSA, ConvNet-3, ${availableParallelism()} threads; median seconds over ${ours[0].length} iterations`,
  );
  console.log(
    '| real pass | Distillery (classes batched) | PyTorch, reference structure (tuned malloc) | ratio (target <= 0.50) |',
  );
  console.log('|---|---:|---:|---:|');
  precisions.forEach((p, i) => {
    const theirs = hasTorch ? median(ref[i]).toFixed(3) : 'python3-torch not installed';
    const ratio = hasTorch ? (median(ours[i]) / median(ref[i])).toFixed(2) : '-';
    console.log(`| ${p} | ${median(ours[i]).toFixed(3)} | ${theirs} | ${ratio} |`);
  });
}

main();
