// RFAD: the loss (Platt and MSE) and its image/label/Platt-scale gradients against finite differences
// in float64, and a stopped run (learned targets, Platt scale in the method state) resuming bit-identical.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as E from '../../src/engine/index.js';
import { resolveConfig } from '../../src/distill/config.js';
import { randomConvNet, randomFeatures, rfad, rfadLoss } from '../../src/distill/methods/rfad.js';
import { centredOneHot } from '../../src/kernels/index.js';
import { writeSquaresFile } from '../fixtures.js';
import { assertResumesBitIdentical } from '../resume.js';
import { assertAllClose, referenceFixture } from '../helpers.js';

test('RFAD loss (Platt and MSE): gradients in images, targets and the Platt scale match finite differences', () => {
  const gen = new E.Generator(8);
  const config = rfad.schema.parse({ width: 3, depth: 2, models: 2 });
  const nets = [0, 1].map(() => {
    const n = randomConvNet(gen, 1, config);
    return { weights: n.weights.map((w) => w.double()), biases: n.biases.map((b) => b.double()) };
  });
  const xt = E.randn([6, 1, 4, 4], { dtype: 'float64', generator: gen });
  const labels = E.tensor([0, 1, 2, 0, 1, 2], { dtype: 'int64' });
  const ft = randomFeatures(nets, xt);
  const xs = E.randn([3, 1, 4, 4], { dtype: 'float64', generator: gen });
  const ys = centredOneHot(E.tensor([0, 1, 2], { dtype: 'int64' }), 3, 'float64');
  for (const loss of ['platt', 'mse'] as const) {
    const fn = (x: E.Tensor, y: E.Tensor, k: E.Tensor) =>
      rfadLoss(randomFeatures(nets, x), y, ft, labels, k, { jit: 5e-3, loss }, 3);
    const r = E.gradcheck(fn, [xs, ys, E.tensor([0.3], { dtype: 'float64' })], { atol: 1e-7, rtol: 1e-4 });
    assert.ok(r.ok, `${loss}: ${JSON.stringify(r)}`);
  }
});

test('RFAD equals its official code: random ConvNet features (models.ConvNet_wide) and the KRR / Platt / MSE loss with its gradients', () => {
  const f = referenceFixture('rfad');
  const nets = [0, 1].map((i) => ({
    weights: [0, 1, 2].map((j) => f.get(`net${i}.conv${j}.weight`)),
    biases: [0, 1, 2].map((j) => f.get(`net${i}.conv${j}.bias`)),
  }));
  const ft = randomFeatures(nets, f.get('xt'));
  const labels = f.get('yt').argmax(1);
  assertAllClose(randomFeatures(nets, f.get('xs')), f.get('features.syn'), 1e-12, 'features');
  for (const loss of ['platt', 'mse'] as const) {
    const xs = f.get('xs').clone().requiresGrad_();
    const ys = f.get('ys').clone().requiresGrad_();
    const k = f.get('k').clone().requiresGrad_();
    const value = rfadLoss(randomFeatures(nets, xs), ys, ft, labels, k, { jit: 5e-3, loss }, 3);
    assertAllClose(value, f.get(`${loss}.loss`), 1e-10, `${loss} loss`);
    const [gx, gy, gk] = E.grad(value, [xs, ys, k], { allowUnused: true });
    assertAllClose(gx as E.Tensor, f.get(`${loss}.grad.images`), 1e-8, `${loss} image gradient`);
    assertAllClose(gy as E.Tensor, f.get(`${loss}.grad.labels`), 1e-8, `${loss} label gradient`);
    if (loss === 'platt') assertAllClose(gk as E.Tensor, f.get('platt.grad.k'), 1e-8, 'k gradient');
  }
});

test('RFAD: a stopped run resumes bit-identical, the Platt scale included', async () => {
  const data = writeSquaresFile({ classes: 3, perClass: 20 });
  const config = () =>
    resolveConfig({
      dataset: data,
      method: 'rfad',
      ipc: 2,
      iterations: 4,
      checkpointEvery: 2,
      evalRuns: 0,
      methodConfig: { models: 2, width: 8, batchReal: 30, plattLr: 0.1 },
      labels: { learn: true },
    });
  const a = await assertResumesBitIdentical('rfad', config, 2);
  const k = a.tensors['method.platt.k'].item();
  const steps = a.tensors['method.platt.opt.step'].item();
  assert.equal(steps, 4);
  assert.notEqual(k, 0, 'the Platt scale moved');
  assert.ok('optimizer.images.expAvgVar.0' in a.tensors, 'AdaBelief on the images');
});
