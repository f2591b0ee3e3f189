// Evaluation speed: seconds to train one network of the protocol on an IPC-10
// MNIST-shaped set (100 images, ConvNet-3, DSA on, batch 256), Distillery vs a
// PyTorch loop of the reference structure (DataLoader over the synthetic set,
// per-batch DiffAugment; bench/eval_torch.py) on the same machine, alternating
// rounds. Epochs are reduced from the protocol's 1000 to keep the run short; the
// cost per epoch is what is compared. Both run in float32 and, where the CPU has
// native bfloat16, in bfloat16 mixed precision (ours: protocol.precision; PyTorch:
// manual casts of a weight copy per step); each ratio compares equal precision.
//
//   npm run bench:eval [-- --epochs 100 --runs 2 --rounds 2]
import { execFileSync, spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import * as E from '../src/engine/index.js';
import { createNetwork } from '../src/models/index.js';
import { defaultProtocol, trainAndTest, type TrainingPrecision } from '../src/eval/index.js';
import { median, numberFlag, realPrecisions } from './util.js';

function ours(runs: number, epochs: number, ipc: number, precision: TrainingPrecision): number[] {
  const gen = new E.Generator(0);
  const images = E.randn([10 * ipc, 1, 28, 28], { generator: gen });
  const labels = E.arange(10).unsqueeze(1).expand(10, ipc).flatten();
  const test = {
    images: E.randn([100, 1, 28, 28], { generator: gen }),
    labels: E.arange(10).unsqueeze(1).expand(10, 10).flatten(),
  };
  const net = createNetwork('ConvNet', [1, 28, 28], 10);
  const protocol = { ...defaultProtocol('mnist', { precision }), epochs };
  const out: number[] = [];
  for (let r = 0; r <= runs; r++) {
    const t0 = performance.now();
    trainAndTest(net, { images, labels }, test, protocol, new E.Generator(r));
    if (r > 0) out.push((performance.now() - t0) / 1000);
  }
  return out;
}

function main(): void {
  const epochs = numberFlag('--epochs', 100);
  const runs = numberFlag('--runs', 2);
  const rounds = numberFlag('--rounds', 2);
  const ipc = numberFlag('--ipc', 10);
  const python = '/usr/bin/python3';
  const hasTorch = spawnSync(python, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
  const script = fileURLToPath(new URL('../../bench/eval_torch.py', import.meta.url));
  const tuned = { ...process.env, MALLOC_MMAP_MAX_: '0', MALLOC_TRIM_THRESHOLD_: '68719476736' };
  const precisions = realPrecisions();
  const a = precisions.map(() => [] as number[]);
  const b = precisions.map(() => [] as number[]);
  for (let round = 0; round < rounds; round++) {
    precisions.forEach((p, i) => a[i].push(...ours(runs, epochs, ipc, p)));
    if (hasTorch)
      precisions.forEach((p, i) => {
        const args = [script, runs, epochs, availableParallelism(), ipc, p].map(String);
        b[i].push(...(JSON.parse(execFileSync(python, args, { env: tuned, encoding: 'utf8' })) as number[]));
      });
  }
  const perEpoch = (xs: number[]) => ((1000 * median(xs)) / (epochs + 1)).toFixed(1);
  console.log(
    `Evaluation training, ConvNet-3 on ${10 * ipc} MNIST-shaped images, DSA, ${epochs + 1} epochs, ${availableParallelism()} threads; seconds per network, median of ${runs * rounds}`,
  );
  console.log(
    '| precision | Distillery s / network (ms / epoch) | PyTorch reference loop, tuned malloc | ratio Distillery / PyTorch (target <= 0.50) |',
  );
  console.log('|---|---:|---:|---:|');
  precisions.forEach((p, i) => {
    const theirs = hasTorch
      ? `${median(b[i]).toFixed(2)} (${perEpoch(b[i])})`
      : 'python3-torch not installed';
    const ratio = hasTorch ? (median(a[i]) / median(b[i])).toFixed(2) : '-';
    console.log(
      `| ${p === 'bfloat16' ? 'bfloat16 mixed' : p} | ${median(a[i]).toFixed(2)} (${perEpoch(a[i])}) | ${theirs} | ${ratio} |`,
    );
  });
}

main();
