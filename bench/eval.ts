// Evaluation speed: seconds to train one network of the protocol on an IPC-10
// MNIST-shaped set (100 images, ConvNet-3, DSA on, batch 256), Distillery vs a
// PyTorch loop of the reference structure (DataLoader over the synthetic set,
// per-batch DiffAugment; bench/eval_torch.py) on the same machine, alternating
// rounds. Epochs are reduced from the protocol's 1000 to keep the run short; the
// cost per epoch is what is compared.
//
//   npm run bench:eval [-- --epochs 100 --runs 2 --rounds 2]
import { execFileSync, spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import * as E from '../src/engine/index.js';
import { createNetwork } from '../src/models/index.js';
import { defaultProtocol, trainAndTest } from '../src/eval/index.js';
import { median, numberFlag } from './util.js';

function ours(runs: number, epochs: number, ipc: number): number[] {
  const gen = new E.Generator(0);
  const images = E.randn([10 * ipc, 1, 28, 28], { generator: gen });
  const labels = E.arange(10).unsqueeze(1).expand(10, ipc).flatten();
  const test = {
    images: E.randn([100, 1, 28, 28], { generator: gen }),
    labels: E.arange(10).unsqueeze(1).expand(10, 10).flatten(),
  };
  const net = createNetwork('ConvNet', [1, 28, 28], 10);
  const protocol = { ...defaultProtocol('mnist'), epochs };
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
  const a: number[] = [];
  const b: number[] = [];
  for (let round = 0; round < rounds; round++) {
    a.push(...ours(runs, epochs, ipc));
    if (hasTorch) {
      const out = execFileSync(
        python,
        [script, String(runs), String(epochs), String(availableParallelism()), String(ipc)],
        { env: tuned, encoding: 'utf8' },
      );
      b.push(...(JSON.parse(out) as number[]));
    }
  }
  console.log(
    `Evaluation training, ConvNet-3 on ${10 * ipc} MNIST-shaped images, DSA, ${epochs + 1} epochs; seconds per network, median of ${a.length}`,
  );
  console.log('| run | s / network | ms / epoch |');
  console.log('|---|---:|---:|');
  console.log(`| Distillery | ${median(a).toFixed(2)} | ${((1000 * median(a)) / (epochs + 1)).toFixed(1)} |`);
  if (hasTorch) {
    console.log(
      `| PyTorch reference loop (tuned malloc) | ${median(b).toFixed(2)} | ${((1000 * median(b)) / (epochs + 1)).toFixed(1)} |`,
    );
    console.log(`| speed-up (target >= 2) | ${(median(b) / median(a)).toFixed(2)}x | |`);
  } else console.log('| PyTorch reference loop | python3-torch not installed | |');
}

main();
