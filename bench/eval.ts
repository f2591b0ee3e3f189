// Evaluation speed: seconds to train one network of the protocol on an IPC-10
// MNIST-shaped set (100 images, ConvNet-3, DSA on, batch 256), Distillery vs a
// PyTorch loop of the reference structure (DataLoader over the synthetic set,
// per-batch DiffAugment; bench/eval_torch.py) on the same machine, alternating
// rounds. Epochs are reduced from the protocol's 1000 to keep the run short; the
// cost per epoch is what is compared. Ours runs in float32 (the default) and, where
// the CPU has native bfloat16, in bfloat16 mixed precision (protocol.precision).
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
  const a = new Map<TrainingPrecision, number[]>(precisions.map((p) => [p, []]));
  const b: number[] = [];
  for (let round = 0; round < rounds; round++) {
    for (const p of precisions) a.get(p)!.push(...ours(runs, epochs, ipc, p));
    if (hasTorch) {
      const out = execFileSync(
        python,
        [script, String(runs), String(epochs), String(availableParallelism()), String(ipc)],
        { env: tuned, encoding: 'utf8' },
      );
      b.push(...(JSON.parse(out) as number[]));
    }
  }
  const perEpoch = (xs: number[]) => ((1000 * median(xs)) / (epochs + 1)).toFixed(1);
  console.log(
    `Evaluation training, ConvNet-3 on ${10 * ipc} MNIST-shaped images, DSA, ${epochs + 1} epochs; seconds per network, median of ${runs * rounds}`,
  );
  console.log('| run | s / network | ms / epoch | speed-up vs PyTorch (target >= 2) |');
  console.log('|---|---:|---:|---:|');
  for (const [p, xs] of a) {
    const ratio = hasTorch ? `${(median(b) / median(xs)).toFixed(2)}x` : '-';
    console.log(`| Distillery, ${p} | ${median(xs).toFixed(2)} | ${perEpoch(xs)} | ${ratio} |`);
  }
  if (hasTorch)
    console.log(
      `| PyTorch reference loop, float32 (tuned malloc) | ${median(b).toFixed(2)} | ${perEpoch(b)} | 1 |`,
    );
  else console.log('| PyTorch reference loop | python3-torch not installed | | |');
}

main();
