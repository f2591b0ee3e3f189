// M3D: the kernel MMD loss and its image gradient against a PyTorch transcription of the paper's equation
// (the authors have released no code; test/fixtures/reference/generate.py m3d_fixture), the linear
// kernel equal to DM's loss, the gradients against finite differences in float64, clear errors on bad
// input, and a stopped run resuming bit-identical.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as E from '../../src/engine/index.js';
import { resolveConfig } from '../../src/distill/config.js';
import { distributionMatchingLoss, type DMProblem } from '../../src/distill/methods/dm.js';
import { m3dLoss, type M3DConfig } from '../../src/distill/methods/m3d.js';
import { KernelError, mmd2, squaredDistances } from '../../src/kernels/index.js';
import { createNetwork } from '../../src/models/index.js';
import { assertAllClose, referenceFixture, withWeights } from '../helpers.js';
import { writeSquaresFile } from '../fixtures.js';
import { assertResumesBitIdentical } from '../resume.js';

type Kernel = Pick<M3DConfig, 'kernel' | 'bandwidth' | 'scales'>;

function fixtureProblem(): {
  fx: ReturnType<typeof referenceFixture>;
  problem: (syn: E.Tensor) => DMProblem;
} {
  const fx = referenceFixture('m3d');
  const classes = Number(fx.meta.classes);
  const net = createNetwork(fx.meta.model, [1, 28, 28], classes);
  const state = withWeights(net, fx.get);
  const real = fx.get('real');
  return {
    fx,
    problem: (syn) => ({
      net,
      state,
      classes,
      real,
      perClass: real.size(0) / classes,
      syn,
      ipc: syn.size(0) / classes,
      draws: null,
      dsa: null,
      realDtype: 'float32',
      realChunk: 640,
    }),
  };
}

test("M3D: the loss and image gradient equal the paper's MMD transcribed in PyTorch (4 kernels)", () => {
  const { fx, problem } = fixtureProblem();
  const cases: Record<string, Kernel> = {
    'gaussian.median': { kernel: 'gaussian', bandwidth: 'median', scales: [1] },
    'gaussian.fixed': { kernel: 'gaussian', bandwidth: 50, scales: [1] },
    'laplacian.median': { kernel: 'laplacian', bandwidth: 'median', scales: [1] },
    'gaussian.scales': { kernel: 'gaussian', bandwidth: 'median', scales: [0.5, 1, 2] },
  };
  for (const [key, kernel] of Object.entries(cases)) {
    const syn = fx.get('syn').clone().requiresGrad_();
    const loss = m3dLoss(problem(syn), kernel);
    assertAllClose(loss, fx.get(`${key}.loss`), 1e-5, `${key} loss`);
    assertAllClose(E.grad(loss, [syn])[0], fx.get(`${key}.grad`), 1e-4, `${key} image gradient`);
  }
});

test("M3D: with the linear kernel the loss and gradient are DM's (MMD of the mean embedding)", () => {
  const { fx, problem } = fixtureProblem();
  const syn = fx.get('syn').clone().requiresGrad_();
  const linear = m3dLoss(problem(syn), { kernel: 'linear', bandwidth: 'median', scales: [1] });
  const dm = distributionMatchingLoss(problem(syn));
  assertAllClose(linear, dm, 1e-4, 'loss');
  assertAllClose(E.grad(linear, [syn])[0], E.grad(dm, [syn])[0], 1e-3, 'gradient');
  // And the Gaussian kernel is not DM's: the test can tell the two apart.
  const gaussian = m3dLoss(problem(syn), { kernel: 'gaussian', bandwidth: 'median', scales: [1] });
  assert.ok(Math.abs(gaussian.item() - dm.item()) > 1e-2 * dm.item());
});

test('MMD^2: zero for identical samples, positive otherwise, and the gradient in float64 equals finite differences', () => {
  const gen = new E.Generator(5);
  const f64 = { dtype: 'float64' as const, generator: gen };
  const x = E.randn([2, 6, 4], f64);
  for (const kernel of ['gaussian', 'laplacian', 'linear'] as const) {
    const options = { kernel, bandwidth: 'median' as const };
    assert.ok(Math.abs(mmd2(x, x, options).sum().item()) < 1e-12, `${kernel}: MMD(X, X) = 0`);
    const y = E.randn([2, 3, 4], f64).add(0.5);
    assert.ok(mmd2(x, y, options).min().item() > 0, `${kernel}: MMD(X, Y) > 0`);
    // A fixed bandwidth: the median one moves with y under finite differences but is held constant in the
    // gradient (as in the transcription), which the next test checks.
    const r = E.gradcheck((v) => mmd2(x, v, { kernel, bandwidth: 2, scales: [0.5, 1] }).sum(), [y], {
      atol: 1e-7,
      rtol: 1e-5,
    });
    assert.ok(r.ok, `${kernel}: ${JSON.stringify(r)}`);
  }
});

test("MMD^2: the median bandwidth is the pooled sample's lower median squared distance, held constant in the gradient", () => {
  const gen = new E.Generator(6);
  const x = E.randn([1, 5, 3], { dtype: 'float64', generator: gen });
  const y = E.randn([1, 2, 3], { dtype: 'float64', generator: gen }).requiresGrad_();
  const pooled = E.cat([x, y.detach()], 1);
  const d2 = squaredDistances(pooled, pooled).reshape(7, 7).toList() as number[][];
  const off = d2.flatMap((row, i) => row.filter((_, j) => j !== i)).sort((a, b) => a - b);
  const median = off[Math.floor((off.length - 1) / 2)]!;
  for (const kernel of ['gaussian', 'laplacian'] as const) {
    const byMedian = mmd2(x, y, { kernel, bandwidth: 'median' }).sum();
    const byValue = mmd2(x, y, { kernel, bandwidth: median }).sum();
    assert.ok(Math.abs(byMedian.item() - byValue.item()) < 1e-12, `${kernel}: the same loss`);
    assertAllClose(E.grad(byMedian, [y])[0], E.grad(byValue, [y])[0], 1e-12, `${kernel}: the same gradient`);
  }
});

test('M3D: the gradient through the network equals finite differences in float64', () => {
  const net = createNetwork('ConvNetW4D2', [1, 8, 8], 2);
  const gen = new E.Generator(3);
  const state = net.init(gen);
  for (const [k, t] of state.params) state.params.set(k, t.double());
  const f64 = { dtype: 'float64' as const, generator: gen };
  const real = E.randn([6, 1, 8, 8], f64);
  const loss = (syn: E.Tensor) =>
    m3dLoss(
      {
        net,
        state,
        classes: 2,
        real,
        perClass: 3,
        syn,
        ipc: 2,
        draws: null,
        dsa: null,
        realDtype: 'float32',
        realChunk: 640,
      },
      { kernel: 'gaussian', bandwidth: 4, scales: [1] },
    );
  const r = E.gradcheck(loss, [E.randn([4, 1, 8, 8], f64)], { atol: 1e-7, rtol: 1e-4 });
  assert.ok(r.ok, JSON.stringify(r));
});

test('MMD^2 and M3D: bad input is a clear error', () => {
  const x = E.zeros([2, 3, 4]);
  assert.throws(() => mmd2(x, E.zeros([2, 3, 5]), { kernel: 'gaussian', bandwidth: 1 }), KernelError);
  assert.throws(() => mmd2(x, x, { kernel: 'gaussian', bandwidth: -1 }), /bandwidth must be positive/);
  assert.throws(
    () => mmd2(x, x, { kernel: 'gaussian', bandwidth: 1, scales: [] }),
    /scales must be positive/,
  );
  assert.throws(
    () => resolveConfig({ method: 'm3d', methodConfig: { bandwidth: 0 } }),
    /bandwidth/,
    'a non-positive bandwidth is refused by the config',
  );
  assert.throws(() => resolveConfig({ method: 'm3d', methodConfig: { kernel: 'cosine' } }), /kernel/);
});

test('M3D: a stopped run resumes bit-identical', async () => {
  const data = writeSquaresFile({ classes: 3, perClass: 12 });
  const config = () =>
    resolveConfig({
      dataset: data,
      method: 'm3d',
      ipc: 2,
      model: 'ConvNetW8',
      iterations: 4,
      checkpointEvery: 2,
      evalRuns: 0,
      methodConfig: { batchReal: 6 },
    });
  await assertResumesBitIdentical('m3d', config, 2);
});
