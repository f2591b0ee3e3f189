// Trajectory matching: seconds per iteration and peak memory (max RSS of a fresh
// process per configuration) at synSteps 10, 20, 40 on MNIST-shaped data, IPC 10 (all
// 100 images per student step), DSA, ConvNet-3, float32 on both sides: MTT with the
// unrolled and the adjoint gradient, and TESLA; and, when python3-torch is present,
// the same MTT and TESLA iterations as PyTorch loops of the reference structure
// (bench/mtt_torch.py, tuned malloc). The start/target parameter vectors are random
// here: the cost of an iteration does not depend on where the expert was.
//
//   npm run bench:mtt [-- --iterations 3 --steps 10,20,40 --no-reference --reference-mtt-steps 10]
//
// PyTorch's unrolled MTT holds ~1 GB per student step here (10.4 GB at 10 steps): it runs only
// at the steps in --reference-mtt-steps (default 10); its TESLA runs at every step count.
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
  const list = (flag: string, fallback: string) => {
    const i = process.argv.indexOf(flag);
    return (i >= 0 ? process.argv[i + 1] : fallback).split(',').map(Number);
  };
  const stepsList = list('--steps', '10,20,40');
  const referenceMttSteps = list('--reference-mtt-steps', '10');
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
    `Trajectory matching iteration, MNIST IPC ${ipc} (100 images per student step), DSA, ConvNet-3, float32, ${availableParallelism()} threads; median s / iteration over ${iterations}, peak RSS MiB of the process`,
  );
  console.log(
    '| synSteps | MTT unrolled s (MiB) | MTT adjoint s (MiB) | TESLA s (MiB) | PyTorch MTT s (MiB) | PyTorch TESLA s (MiB) | MTT / PyTorch MTT (target <= 0.50) | TESLA / PyTorch TESLA |',
  );
  console.log('|---:|---:|---:|---:|---:|---:|---:|---:|');
  const cell = (r: { seconds: number[]; maxRssKiB: number } | null) =>
    r ? `${median(r.seconds).toFixed(2)} (${(r.maxRssKiB / 1024).toFixed(0)})` : 'not run';
  const ratio = (a: { seconds: number[] }, b: { seconds: number[] } | null) =>
    b ? (median(a.seconds) / median(b.seconds)).toFixed(2) : '-';
  for (const steps of stepsList) {
    const args = (kind: string) => [self, '--child', kind, String(steps), String(iterations)];
    const [unrolled, adjoint, tesla] = ['mtt', 'adjoint', 'tesla'].map((k) => run(process.execPath, args(k)));
    const ref = (method: string) =>
      run(python, [script, iterations, availableParallelism(), ipc, steps, method].map(String), tuned);
    const refMtt = hasTorch && referenceMttSteps.includes(steps) ? ref('mtt') : null;
    const refTesla = hasTorch ? ref('tesla') : null;
    const cells = [steps, cell(unrolled), cell(adjoint), cell(tesla), cell(refMtt), cell(refTesla)];
    console.log(`| ${[...cells, ratio(unrolled, refMtt), ratio(tesla, refTesla)].join(' | ')} |`);
  }
}

const c = process.argv.indexOf('--child');
if (c >= 0) child(process.argv[c + 1], Number(process.argv[c + 2]), Number(process.argv[c + 3]));
else main();
