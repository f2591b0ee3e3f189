// DC speed: seconds per outer iteration on MNIST-shaped data, real batch 256 per
// class, no augmentation, ConvNet-3: Distillery's DC step (per-class matching,
// second order through the engine's convolution) vs a PyTorch loop of the
// reference structure (bench/dc_torch.py), alternating rounds in one run, tuned
// malloc for PyTorch. IPC 1 (outer 1, inner 1: matching only) and, with
// --ipc10, IPC 10 (10 image updates and 9 x 50 epochs of network training).
// Medians over all measured iterations. Both take the real-batch gradients in
// float32 and, where the CPU has native bfloat16, in bfloat16 channels-last
// (PyTorch: manual casts of a network copy and the inputs); each ratio compares equal precision.
//
//   npm run bench:dc [-- --iterations 10 --rounds 2 --ipc10 1]
import { execFileSync, spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import * as E from '../src/engine/index.js';
import type { Dataset } from '../src/data/dataset.js';
import { loadDataset } from '../src/data/registry.js';
import { contextWithOptimizer } from '../src/distill/method.js';
import { dc, loopsForIpc } from '../src/distill/methods/dc.js';
import { SyntheticSet } from '../src/distill/synthetic.js';
import type { RealDtype } from '../src/distill/precision.js';
import { median, numberFlag, realPrecisions } from './util.js';

const python = '/usr/bin/python3';
const script = fileURLToPath(new URL('../../bench/dc_torch.py', import.meta.url));
const tuned = { ...process.env, MALLOC_MMAP_MAX_: '0', MALLOC_TRIM_THRESHOLD_: '68719476736' };
const batchReal = 256;

function ours(dataset: Dataset, ipc: number, iterations: number, realDtype: RealDtype): number[] {
  const gen = new E.Generator(0);
  const synthetic = SyntheticSet.create(dataset, ipc, 'noise', gen);
  const opt = new E.SGD(synthetic.learnable, { lr: 0.1, momentum: 0.5 });
  const ctx = contextWithOptimizer({ dataset, synthetic, gen, model: 'ConvNet' }, opt);
  const config = dc.schema.parse({ batchReal, realDtype });
  const seconds: number[] = [];
  for (let it = 0; it < iterations + 1; it++) {
    const t0 = performance.now();
    dc.step(ctx, config, it);
    if (it >= 1) seconds.push((performance.now() - t0) / 1000); // one warm-up iteration
  }
  opt.disposeState();
  return seconds;
}

function reference(ipc: number, iterations: number, precision: RealDtype): number[] {
  const { outerLoop, innerLoop } = loopsForIpc(ipc);
  const args = [iterations, availableParallelism(), ipc, batchReal, outerLoop, innerLoop, precision].map(
    String,
  );
  return JSON.parse(execFileSync(python, [script, ...args], { env: tuned, encoding: 'utf8' })) as number[];
}

function main(): void {
  const iterations = numberFlag('--iterations', 10);
  const rounds = numberFlag('--rounds', 2);
  const ipcs = numberFlag('--ipc10', 0) ? [1, 10] : [1];
  const hasTorch = spawnSync(python, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
  const dataset = loadDataset('mnist');
  console.log(
    `DC outer iteration, MNIST, real batch ${batchReal} per class, no augmentation, ConvNet-3, ${availableParallelism()} threads; median seconds`,
  );
  const precisions = realPrecisions();
  console.log(
    '| IPC | real gradients | Distillery | PyTorch, reference structure (tuned malloc) | ratio (target <= 0.50) |',
  );
  console.log('|---:|---|---:|---:|---:|');
  for (const ipc of ipcs) {
    // IPC 10 iterations take a minute or more each: one per round.
    const n = ipc === 1 ? iterations : 1;
    const a: number[][] = precisions.map(() => []);
    const b: number[][] = precisions.map(() => []);
    for (let round = 0; round < rounds; round++) {
      precisions.forEach((p, i) => a[i].push(...ours(dataset, ipc, n, p)));
      if (hasTorch) precisions.forEach((p, i) => b[i].push(...reference(ipc, n, p)));
    }
    precisions.forEach((p, i) => {
      const ref = hasTorch ? median(b[i]).toFixed(3) : 'python3-torch not installed';
      const ratio = hasTorch ? (median(a[i]) / median(b[i])).toFixed(2) : '-';
      console.log(`| ${ipc} | ${p} | ${median(a[i]).toFixed(3)} | ${ref} | ${ratio} |`);
    });
  }
}

main();
