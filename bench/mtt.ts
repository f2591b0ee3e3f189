// MTT vs TESLA: seconds per iteration and peak memory (max RSS of a fresh process
// per configuration) at synSteps 10, 20, 40 on MNIST-shaped data, IPC 10 (all 100
// images per student step), DSA, ConvNet-3; and, when python3-torch is present,
// the same MTT iteration as a PyTorch loop of the reference structure
// (bench/mtt_torch.py, tuned malloc). The start/target parameter vectors are random
// here: the cost of an iteration does not depend on where the expert was.
//
//   npm run bench:mtt [-- --iterations 3 --steps 10,20,40 --no-reference]
//
// PyTorch's unrolled MTT holds ~1 GB per student step here (10.4 GB at 10 steps):
// --no-reference skips it where it would not fit in memory.
import { execFileSync, spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import * as E from '../src/engine/index.js';
import { DSA, defaultStrategy } from '../src/augment/index.js';
import { loadDataset } from '../src/data/registry.js';
import {
  adjointGradients,
  teslaGradients,
  unrolledGradients,
  type StudentStep,
} from '../src/distill/methods/mtt.js';
import { SyntheticSet } from '../src/distill/synthetic.js';
import { createNetwork, flattenParams, paramLayout } from '../src/models/index.js';
import { median, numberFlag } from './util.js';

const ipc = 10;

/** One configuration in this (fresh) process: prints {seconds, maxRssKiB}. */
function child(kind: string, steps: number, iterations: number): void {
  const dataset = loadDataset('mnist');
  const gen = new E.Generator(0);
  const net = createNetwork('ConvNet', dataset.imageShape, dataset.numClasses);
  const state = net.init(gen);
  const layout = paramLayout(state);
  const start = flattenParams(state);
  const target = start.add(E.randn(start.shape, { generator: gen }).mul(0.01));
  const synthetic = SyntheticSet.create(dataset, ipc, 'real', gen);
  const lr = E.tensor(0.01, { shape: [] }).requiresGrad_();
  const dsa = new DSA({ strategy: defaultStrategy('mnist') });
  const opt = new E.SGD(synthetic.learnable, { lr: 100, momentum: 0.5 });
  const m = ipc * dataset.numClasses;
  const seconds: number[] = [];
  for (let it = 0; it < iterations + 1; it++) {
    const t0 = performance.now();
    E.tidy(() => {
      const studentSteps: StudentStep[] = Array.from({ length: steps }, () => ({
        indices: E.randperm(m, { generator: gen }),
        draws: dsa.sample(m, gen, { sharedGroup: true }),
      }));
      const { images, labels } = synthetic.decode();
      const problem = { net, layout, start, target, images, labels, lr, steps: studentSteps, dsa };
      const fn =
        kind === 'tesla' ? teslaGradients : kind === 'adjoint' ? adjointGradients : unrolledGradients;
      const { grads } = fn(problem, [...synthetic.learnable, lr]);
      const lrGrad = grads.pop() as E.Tensor;
      opt.step(grads);
      E.noGrad(() => lr.sub_(lrGrad.mul(1e-5)));
    });
    if (it >= 1) seconds.push((performance.now() - t0) / 1000);
  }
  console.log(JSON.stringify({ seconds, maxRssKiB: process.resourceUsage().maxRSS }));
}

function main(): void {
  const iterations = numberFlag('--iterations', 3);
  const i = process.argv.indexOf('--steps');
  const stepsList = (i >= 0 ? process.argv[i + 1] : '10,20,40').split(',').map(Number);
  const self = fileURLToPath(import.meta.url);
  const python = '/usr/bin/python3';
  const hasTorch =
    !process.argv.includes('--no-reference') &&
    spawnSync(python, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
  const script = fileURLToPath(new URL('../../bench/mtt_torch.py', import.meta.url));
  const tuned = { ...process.env, MALLOC_MMAP_MAX_: '0', MALLOC_TRIM_THRESHOLD_: '68719476736' };
  const run = (cmd: string, args: string[], env = process.env) =>
    JSON.parse(execFileSync(cmd, args, { env, encoding: 'utf8' }).trim().split('\n').pop() as string) as {
      seconds: number[];
      maxRssKiB: number;
    };
  console.log(
    `MTT / TESLA iteration, MNIST IPC ${ipc} (100 images per student step), DSA, ConvNet-3, ${availableParallelism()} threads; median s / iteration over ${iterations}, peak RSS of the process`,
  );
  console.log(
    '| synSteps | MTT s | MTT peak RSS MiB | TESLA s | TESLA peak RSS MiB | PyTorch MTT s | PyTorch peak RSS MiB | MTT / PyTorch |',
  );
  console.log('|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const steps of stepsList) {
    const args = (kind: string) => [self, '--child', kind, String(steps), String(iterations)];
    const mtt = run(process.execPath, args('mtt'));
    const tesla = run(process.execPath, args('tesla'));
    const ref = hasTorch
      ? run(
          python,
          [script, String(iterations), String(availableParallelism()), String(ipc), String(steps)],
          tuned,
        )
      : null;
    const mib = (k: number) => (k / 1024).toFixed(0);
    const cells = [
      steps,
      median(mtt.seconds).toFixed(2),
      mib(mtt.maxRssKiB),
      median(tesla.seconds).toFixed(2),
      mib(tesla.maxRssKiB),
      ref ? median(ref.seconds).toFixed(2) : 'not run',
      ref ? mib(ref.maxRssKiB) : '-',
      ref ? (median(mtt.seconds) / median(ref.seconds)).toFixed(2) : '-',
    ];
    console.log(`| ${cells.join(' | ')} |`);
  }
}

const c = process.argv.indexOf('--child');
if (c >= 0) child(process.argv[c + 1], Number(process.argv[c + 2]), Number(process.argv[c + 3]));
else main();
