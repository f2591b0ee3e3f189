// What bounds float32 speed: the ConvNet-3 work of DM's real pass (a no-grad forward of 2,560
// MNIST-shaped images, 10 classes x 256) and of one evaluation epoch (forward + backward of a
// 100-image batch), as achieved GFLOP/s next to the machine's float32 GEMM rate (a 2048^3 matmul,
// the practical compute peak of these cores), for Distillery and for PyTorch (bench/bound_torch.py)
// on the same libtorch. A pass that already runs near the GEMM rate cannot get 2x faster in
// float32 without doing fewer operations (Winograd, FFT, lower precision, fewer images).
//
//   node dist/bench/bound.js [--runs 5]
//
// Operation counts (multiply-adds x 2) are computed from the layer shapes: per image, conv1
// 1->128 at 32x32, conv2 128->128 at 16x16, conv3 128->128 at 8x8 (3x3 kernels), and the classifier;
// a backward pass costs about twice its forward.
import { execFileSync, spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import * as E from '../src/engine/index.js';
import { createNetwork } from '../src/models/index.js';
import { median, numberFlag } from './util.js';

/** FLOPs of one ConvNet-3 forward on one 1x28x28 image (convolutions and classifier). */
export const FORWARD_FLOP =
  2 * (128 * 9 * 1 * 32 * 32 + 128 * 9 * 128 * 16 * 16 + 128 * 9 * 128 * 8 * 8 + 10 * 2048);

function time(runs: number, fn: () => void): number {
  fn();
  fn();
  const t: number[] = [];
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    fn();
    t.push((performance.now() - t0) / 1000);
  }
  return median(t);
}

function main(): void {
  const runs = numberFlag('--runs', 5);
  const gen = new E.Generator(0);
  const a = E.randn([2048, 2048], { generator: gen }).keep();
  const b = E.randn([2048, 2048], { generator: gen }).keep();
  const matmul = (2 * 2048 ** 3) / time(runs, () => E.tidy(() => a.matmul(b).sum().item())) / 1e9;
  const cx = E.randn([64, 256, 32, 32], { generator: gen }).keep();
  const cw = E.randn([256, 256, 3, 3], { generator: gen }).keep();
  const bigConvFlop = 2 * 256 * 256 * 9 * 32 * 32 * 64;
  const bigConv =
    bigConvFlop /
    time(runs, () => E.noGrad(() => E.tidy(() => E.nn.conv2d(cx, cw, null, { padding: 1 }).sum().item()))) /
    1e9;
  const gemm = Math.max(matmul, bigConv);
  const net = createNetwork('ConvNet', [1, 28, 28], 10);
  const state = net.init(gen);
  const real = E.randn([2560, 1, 28, 28], { generator: gen }).keep();
  const forward = time(runs, () =>
    E.noGrad(() => E.tidy(() => net.embed(state, real, { train: true }).sum().item())),
  );
  const batch = E.randn([100, 1, 28, 28], { generator: gen }).keep();
  const labels = E.randint(0, 10, [100], { generator: gen }).keep();
  const params = [...state.params.values()].map((p) => p.requiresGrad_());
  const step = time(runs * 4, () =>
    E.tidy(() => {
      E.grad(E.nn.crossEntropy(net.forward(state, batch, { train: true }), labels), params);
    }),
  );
  const rows: [string, number, number][] = [['Distillery', forward, step]];
  const python = '/usr/bin/python3';
  let torchGemm: number | null = null;
  if (spawnSync(python, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0) {
    const script = fileURLToPath(new URL('../../bench/bound_torch.py', import.meta.url));
    const env = { ...process.env, MALLOC_MMAP_MAX_: '0', MALLOC_TRIM_THRESHOLD_: '68719476736' };
    const r = JSON.parse(
      execFileSync(python, [script, String(runs), String(availableParallelism())], { env, encoding: 'utf8' }),
    ) as { gemm: number; bigConv: number; forward: number; forwardPerClass: number; step: number };
    torchGemm = Math.max((2 * 2048 ** 3) / r.gemm / 1e9, bigConvFlop / r.bigConv / 1e9);
    rows.push(
      ['PyTorch (one batch of 2,560)', r.forward, r.step],
      ['PyTorch (per class, as main_DM.py)', r.forwardPerClass, r.step],
    );
  }
  const gf = (flop: number, s: number) => (flop / s / 1e9).toFixed(0);
  console.log(
    `float32, ${availableParallelism()} threads. Practical rate (best of matmul 2048^3 ${matmul.toFixed(0)} and conv 256x256x3x3 ${bigConv.toFixed(0)} GFLOP/s): Distillery ${gemm.toFixed(0)} GFLOP/s${torchGemm ? `, PyTorch ${torchGemm.toFixed(0)} GFLOP/s` : ''}.`,
  );
  console.log(
    '| engine | DM real pass (2,560 images) s | GFLOP/s | % of the rate | eval step (100 images, fwd+bwd) ms | GFLOP/s | % of the rate |',
  );
  console.log('|---|---:|---:|---:|---:|---:|---:|');
  for (const [name, fwd, st] of rows) {
    const f = gf(2560 * FORWARD_FLOP, fwd);
    const s = gf(3 * 100 * FORWARD_FLOP, st);
    console.log(
      `| ${name} | ${fwd.toFixed(3)} | ${f} | ${((100 * Number(f)) / gemm).toFixed(0)} | ${(1000 * st).toFixed(1)} | ${s} | ${((100 * Number(s)) / gemm).toFixed(0)} |`,
    );
  }
}

main();
