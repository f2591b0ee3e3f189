import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as E from '../../src/engine/index.js';
import { loadDataset } from '../../src/data/registry.js';
import { createNetwork } from '../../src/models/index.js';
import {
  defaultProtocol,
  evaluateSet,
  randomSubsetBaseline,
  summarize,
  trainAndTest,
} from '../../src/eval/index.js';
import { tempDir, writeSquaresFile } from '../fixtures.js';

const ds = loadDataset(writeSquaresFile({ classes: 3, perClass: 10 }));
const net = createNetwork('ConvNetW32', ds.imageShape, ds.numClasses);

test('the protocol defaults follow the reference', () => {
  assert.deepEqual(defaultProtocol('mnist'), {
    epochs: 1000,
    lr: 0.01,
    momentum: 0.9,
    weightDecay: 5e-4,
    batchSize: 256,
    augment: 'color_crop_cutout_scale_rotate',
  });
  assert.equal(defaultProtocol('cifar10', { augment: false }).epochs, 300);
  assert.equal(defaultProtocol('cifar10', { augment: false }).augment, 'none');
});

test('training is deterministic for a fixed seed and learns a learnable task', () => {
  const protocol = { ...defaultProtocol('mnist'), epochs: 12 };
  const a = trainAndTest(net, ds.train, ds.test, protocol, new E.Generator(1));
  const b = trainAndTest(net, ds.train, ds.test, protocol, new E.Generator(1));
  assert.deepEqual(a, b);
  assert.ok(a.testAccuracy > 0.8, `accuracy ${a.testAccuracy} on a task with 3 separable classes`);
  const c = trainAndTest(net, ds.train, ds.test, { ...protocol, augment: 'none' }, new E.Generator(2));
  assert.notEqual(c.finalTrainLoss, a.finalTrainLoss);
});

test('soft labels and a learned learning rate are accepted', () => {
  const protocol = { ...defaultProtocol('mnist', { augment: false }), epochs: 3 };
  const soft = E.nn
    .oneHot(ds.train.labels, 3)
    .float()
    .mul(0.9)
    .add(0.1 / 3);
  const r = trainAndTest(
    net,
    { images: ds.train.images, labels: soft, lr: 0.02 },
    ds.test,
    protocol,
    new E.Generator(0),
  );
  assert.ok(Number.isFinite(r.finalTrainLoss));
  assert.throws(
    () =>
      trainAndTest(
        net,
        { images: ds.train.images, labels: ds.train.labels, lr: 1e6 },
        ds.test,
        protocol,
        new E.Generator(0),
      ),
    /diverged at epoch/,
  );
});

test('evaluation reports mean and std over runs; the random-subset baseline is cached', () => {
  process.env.DISTILLERY_CACHE = tempDir('cache');
  const o = {
    models: ['ConvNetW32'],
    runs: 2,
    protocol: { ...defaultProtocol('mnist'), epochs: 2 },
    seed: 0,
  };
  const scores = evaluateSet(ds, ds.train, o);
  assert.equal(scores.ConvNetW32.runs.length, 2);
  assert.deepEqual(summarize([0.5, 0.7]), { mean: 0.6, std: 0.09999999999999998, runs: [0.5, 0.7] });
  let trained = 0;
  const first = randomSubsetBaseline(ds, 2, { ...o, onRun: () => trained++ });
  assert.equal(trained, 2);
  const second = randomSubsetBaseline(ds, 2, { ...o, onRun: () => trained++ });
  assert.equal(trained, 2, 'the second call is served from the cache');
  assert.deepEqual(first, second);
});
