// CAFE: the layer features and the loss's image gradient against the official code (fixture from
// kaiwang960112/CAFE's networks.py ConvNet and distill.py's loss lines), the gradient against finite
// differences in float64, the reference's accuracy watcher, a stopped run resuming bit-identical.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as E from '../../src/engine/index.js';
import { resolveConfig } from '../../src/distill/config.js';
import { AccuracyWatcher, cafe, cafeLoss, type CAFEProblem } from '../../src/distill/methods/cafe.js';
import { DSA } from '../../src/augment/index.js';
import { createNetwork } from '../../src/models/index.js';
import { assertAllClose, referenceFixture, withWeights } from '../helpers.js';
import { writeSquaresFile } from '../fixtures.js';
import { assertResumesBitIdentical } from '../resume.js';

test("CAFE: block features and the loss's image gradient equal the official code's", () => {
  const fx = referenceFixture('cafe');
  const classes = Number(fx.meta.classes);
  const net = createNetwork(fx.meta.model, [1, 28, 28], classes);
  const state = withWeights(net, fx.get);
  const syn = fx.get('syn').clone().requiresGrad_();
  const features = net.blockFeatures(state, syn, { train: true });
  assert.equal(features.length, 4, 'three ReLU outputs and the embedding');
  // f1..f3 (ReLU outputs before pooling) and f5 (the flattened last pooling) of the first two images.
  for (const [i, key] of [
    [0, 'synFeature.0'],
    [1, 'synFeature.1'],
    [2, 'synFeature.2'],
    [3, 'synFeature.4'],
  ] as const)
    assertAllClose(features[i].narrow(0, 0, 2), fx.get(key), 1e-5, `feature ${i}`);
  const problem: CAFEProblem = {
    net,
    state,
    classes,
    real: fx.get('real'),
    realLabels: fx.get('realLabels'),
    syn,
    weights: cafe.schema.parse({}).layerWeights,
    innerWeight: 0.01,
    draws: null,
    dsa: null,
  };
  const loss = cafeLoss(problem);
  assertAllClose(loss, fx.get('loss'), 1e-5, 'loss');
  assertAllClose(E.grad(loss, [syn])[0], fx.get('grad'), 1e-4, 'image gradient');
  assert.throws(
    () => cafeLoss({ ...problem, weights: [1, 1] }),
    /layerWeights has 2 weights, but ConvNetW8D3 gives 4/,
  );
});

test('CAFE: the image gradient equals finite differences in float64 (with Siamese DSA off and on)', () => {
  const net = createNetwork('ConvNetW4D2', [1, 8, 8], 2);
  const gen = new E.Generator(5);
  const state = net.init(gen);
  for (const [k, t] of state.params) state.params.set(k, t.double());
  const f64 = { dtype: 'float64' as const, generator: gen };
  const real = E.randn([6, 1, 8, 8], f64);
  const realLabels = E.tensor([0, 0, 0, 1, 1, 1], { dtype: 'int64' });
  const syn = E.randn([4, 1, 8, 8], f64);
  const dsa = new DSA({ strategy: 'color_crop_cutout_scale_rotate' });
  for (const draws of [null, dsa.sample(2, gen)]) {
    const r = E.gradcheck(
      (x) =>
        cafeLoss({
          net,
          state,
          classes: 2,
          real,
          realLabels,
          syn: x,
          weights: [0.1, 1, 1],
          innerWeight: 0.5,
          draws,
          dsa: draws ? dsa : null,
        }),
      [syn],
      { atol: 1e-6, rtol: 1e-4 },
    );
    assert.ok(r.ok, `${draws ? 'DSA' : 'plain'}: ${JSON.stringify(r)}`);
  }
});

test("CAFE's accuracy watcher: the reference's running sum and window (stop when stable / when moving)", () => {
  // Two classes: acc_k = (acc_{k-1} + a_k,0 + a_k,1) / 2, never reset.
  const w = new AccuracyWatcher(3, 2);
  assert.equal(w.push([0.5, 0.5]), 0.5);
  assert.equal(w.push([0.5, 0.5]), 0.75);
  assert.equal(
    w.check((r) => r < 0.1),
    false,
    'window not full',
  );
  assert.equal(w.push([0.5, 0.5]), 0.875);
  // Range 0.375 is not < 0.1: the oldest value drops (window 0.75, 0.875).
  assert.equal(
    w.check((r) => r < 0.1),
    false,
  );
  w.push([0.5, 0.5]); // 0.9375: window 0.75, 0.875, 0.9375, range 0.1875
  assert.equal(
    w.check((r) => r > 0.15),
    true,
    'moving',
  );
});

const data = writeSquaresFile({ classes: 3, perClass: 20 });
test('CAFE: a stopped run resumes bit-identical (adaptive loops, bounded)', async () => {
  const config = (extra: Record<string, unknown> = {}) =>
    resolveConfig({
      dataset: data,
      method: 'cafe',
      model: 'ConvNetW8D2',
      ipc: 2,
      iterations: 4,
      checkpointEvery: 2,
      evalRuns: 0,
      methodConfig: {
        batchReal: 4,
        probePerClass: 4,
        window: 3,
        maxImageSteps: 4,
        maxNetEpochs: 5,
        layerWeights: [0.1, 1, 1],
      },
      ...extra,
    });
  await assertResumesBitIdentical('cafe', config, 2);
});
