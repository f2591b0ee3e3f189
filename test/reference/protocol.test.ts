// The evaluation protocol against the reference evaluate_synset (utils.py), run on a tiny problem
// with a recording SGD: learning rate and momentum buffer after every step (E + 1 passes, the lr
// drop with a fresh optimizer after pass floor(E/2) + 1), the final weights, batch-norm running
// statistics, and test logits in eval mode. And DC's evaluation augmentation (utils.augment) with the
// reference's draws. Fixtures: test/fixtures/reference/generate.py.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as E from '../../src/engine/index.js';
import { DC_OPS, DcAugment, type DcDraw } from '../../src/augment/index.js';
import { accuracy, trainNetwork, type Protocol } from '../../src/eval/index.js';
import { createNetwork } from '../../src/models/index.js';
import { assertAllClose, referenceFixture, withWeights } from '../helpers.js';

const fx = referenceFixture('eval');

for (const [name, spec] of [
  ['in', 'ConvNetW4D2'],
  ['bn', 'ConvNetW4D2BN'],
] as const) {
  test(`evaluate_synset's schedule, weights and test logits are reproduced step by step (${spec})`, () => {
    const net = createNetwork(spec, [1, 28, 28], 3);
    const state = withWeights(net, fx.get, `${name}.param`);
    const protocol: Protocol = {
      epochs: Number(fx.meta.epochs),
      lr: 0.01,
      momentum: 0.9,
      weightDecay: 5e-4,
      batchSize: 256,
      augment: 'none',
      precision: 'float32',
    };
    const lrs: number[] = [];
    const momenta: E.Tensor[] = [];
    const weights: E.Tensor[] = [];
    trainNetwork(
      net,
      state,
      { images: fx.get('train.images'), labels: fx.get('train.labels') },
      protocol,
      new E.Generator(0),
      {
        onStep: ({ optimizer }) => {
          lrs.push(optimizer.lr);
          const { buffers } = optimizer.stateDict();
          const order = [...state.params.keys()].map((_, i) => buffers[`momentum.${i}`].flatten());
          momenta.push(E.cat(order, 0).keep());
          weights.push(
            E.cat(
              [...state.params.values()].map((p) => p.detach().flatten()),
              0,
            ).keep(),
          );
        },
      },
    );
    const refLr = fx.get(`${name}.lr`).toNumbers();
    assert.deepEqual(
      lrs.map((v) => Math.fround(v)),
      refLr.map((v) => Math.fround(v)),
      'learning rate per step',
    );
    assert.equal(lrs.length, protocol.epochs + 1, 'E + 1 passes of one batch');
    const refMomentum = fx.get(`${name}.momentum`);
    const refWeights = fx.get(`${name}.params`);
    momenta.forEach((m, s) => {
      assertAllClose(m, refMomentum.select(0, s), 1e-4, `momentum buffer after step ${s}`);
      assertAllClose(weights[s], refWeights.select(0, s), 1e-5, `weights after step ${s}`);
    });
    // The drop restarts momentum: the first buffer of the new optimizer is just that step's gradient.
    const drop = refLr.findIndex((v) => v < refLr[0]);
    assert.ok(drop > 0 && momenta[drop].norm().item() < momenta[drop - 1].norm().item());
    const test = { images: fx.get('test.images'), labels: fx.get('test.labels') };
    const logits = E.noGrad(() => net.forward(state, test.images, { train: false }));
    assertAllClose(logits, fx.get(`${name}.test.logits`), 1e-4, 'test logits (eval mode)');
    assert.equal(accuracy(net, state, test), fx.get(`${name}.accuracy`).item());
    if (name === 'bn') {
      for (const [d, ref] of [
        [0, 1],
        [1, 5],
      ]) {
        assertAllClose(
          state.buffers.get(`features.${d}.norm.runningMean`)!,
          fx.get(`bn.buffer.features.${ref}.running_mean`),
          1e-5,
          'running mean',
        );
        assertAllClose(
          state.buffers.get(`features.${d}.norm.runningVar`)!,
          fx.get(`bn.buffer.features.${ref}.running_var`),
          1e-5,
          'running var',
        );
      }
    }
  });
}

test("DC's evaluation augmentation equals the reference augment() with its draws (crop, scale, rotate, noise)", () => {
  const aug = referenceFixture('dcaug');
  const x = aug.get('input');
  for (const strategy of ['crop_scale_rotate', 'crop_noise']) {
    const dc = new DcAugment(strategy);
    const ops = aug.get(`${strategy}.op`).toNumbers();
    const params = aug.get(`${strategy}.params`).toList() as number[][];
    const draws: DcDraw[] = ops.map((k, i) => ({ op: dc.ops[k], a: params[i][0], b: params[i][1] }));
    for (const op of strategy.split('_'))
      assert.ok(
        draws.some((d) => d.op === op),
        `the draws include ${op}`,
      );
    // The noise tensor the reference drew, as a standard normal (augment() scales it by 0.001).
    const noise = aug.get(`${strategy}.noise`);
    const out = dc.apply(x, draws, noise);
    assertAllClose(out, aug.get(`${strategy}.output`), 1e-5, strategy);
    draws.forEach((d, i) =>
      assert.ok(out.select(0, i).sub(x.select(0, i)).abs().max().item() > 0, `image ${i} (${d.op}) changed`),
    );
  }
  assert.deepEqual([...DC_OPS], ['crop', 'scale', 'rotate', 'noise']);
});
