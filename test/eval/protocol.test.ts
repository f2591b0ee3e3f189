import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as E from '../../src/engine/index.js';
import { loadDataset } from '../../src/data/registry.js';
import { createNetwork } from '../../src/models/index.js';
import {
  defaultProtocol,
  resolveAugment,
  evaluateSet,
  randomSubsetBaseline,
  summarize,
  targetTrainSet,
  trainAndTest,
  trainEpoch,
  usesMixedPrecision,
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
    precision: 'float32',
  });
  assert.equal(defaultProtocol('cifar10', { augment: false }).epochs, 300);
  assert.equal(defaultProtocol('cifar10', { augment: false }).augment, 'none');
});

test("DC's evaluation rule (get_daparam): crop/scale/rotate on MNIST for 1000 epochs, crop_noise on ConvNetBN, else none for 300", () => {
  assert.equal(resolveAugment('dc', 'mnist', 'ConvNet'), 'dc:crop_scale_rotate');
  assert.equal(resolveAugment('dc', 'fashion-mnist', 'ConvNet'), 'none');
  assert.equal(resolveAugment('dc', 'cifar10', 'ConvNetBN'), 'dc:crop_noise');
  assert.equal(resolveAugment(true, 'cifar10'), 'color_crop_cutout_flip_scale_rotate');
  assert.equal(resolveAugment('dsa', 'mnist'), 'color_crop_cutout_scale_rotate');
  assert.equal(defaultProtocol('mnist', { augment: 'dc', evalModel: 'ConvNet' }).epochs, 1000);
  assert.equal(defaultProtocol('cifar10', { augment: 'dc', evalModel: 'ConvNet' }).epochs, 300);
  assert.throws(() => resolveAugment('dc:crop_spin', 'mnist'), /unknown DC augmentation 'spin'/);
  assert.throws(() => resolveAugment('color_blur', 'mnist'), /unknown augmentation 'blur'/);
  // A DC-augmented protocol trains (the augmentation runs on every batch).
  const c = trainAndTest(
    net,
    ds.train,
    ds.test,
    { ...defaultProtocol('mnist', { augment: 'dc:crop_scale_rotate_noise' }), epochs: 2 },
    new E.Generator(3),
  );
  assert.ok(Number.isFinite(c.finalTrainLoss));
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

test('bfloat16 mixed precision: float32 weights move like a float32 step; deterministic; batch norm stays float32', () => {
  // One epoch = one batch of the 30 images, no augmentation: compare the two updates.
  const update = (precision: 'float32' | 'bfloat16') => {
    const state = net.init(new E.Generator(5));
    const before = [...state.params.values()].map((p) => p.detach().clone());
    const params = [...state.params.values()].map((p) => p.requiresGrad_());
    const opt = new E.SGD(params, { lr: 0.01 });
    const o = { batchSize: 256, augment: null, gen: new E.Generator(6), precision };
    trainEpoch(net, state, opt, ds.train, o);
    assert.ok(
      params.every((p) => p.dtype === 'float32'),
      'the optimizer keeps float32 weights',
    );
    return E.cat(
      params.map((p, i) => p.detach().sub(before[i]).flatten()),
      0,
    );
  };
  const full = update('float32');
  const mixed = update('bfloat16');
  assert.deepEqual(mixed.toNumbers(), update('bfloat16').toNumbers(), 'deterministic');
  assert.ok(mixed.sub(full).abs().max().item() > 0, 'the bfloat16 path ran (its rounding shows)');
  const cosine = mixed.mul(full).sum().item() / (mixed.norm().item() * full.norm().item());
  assert.ok(cosine > 0.99, `update cosine ${cosine}`);

  const protocol = { ...defaultProtocol('mnist', { precision: 'bfloat16' }), epochs: 12 };
  const r = trainAndTest(net, ds.train, ds.test, protocol, new E.Generator(1));
  assert.ok(r.testAccuracy > 0.8, `accuracy ${r.testAccuracy}`);
  const bn = createNetwork('ConvNetBN', ds.imageShape, ds.numClasses).init(new E.Generator(0));
  assert.equal(usesMixedPrecision('bfloat16', bn), false);
  assert.equal(usesMixedPrecision('bfloat16', net.init(new E.Generator(0))), true);
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

test("regression targets train with FRePo's squared error: the readout bias moves by -lr x mean(logits - targets)", () => {
  // d/db of mean_i sum_c 0.5 (z_ic - y_ic)^2 is mean_i (z_i - y_i) for the readout bias b, whatever
  // the network below it; cross-entropy's would be mean_i (softmax(z_i) - y_i).
  const targets = E.nn
    .oneHot(ds.train.labels, 3)
    .float()
    .sub(1 / 3)
    .mul(1.7);
  const state = net.init(new E.Generator(7));
  const names = [...state.params.keys()];
  const bias = names[names.length - 1];
  const before = state.params.get(bias)!.detach().clone();
  const logits = E.noGrad(() => net.forward(state, ds.train.images, { train: true }));
  const lr = 0.05;
  const expected = before.sub(logits.sub(targets).mean(0).mul(lr)).toNumbers();
  const params = [...state.params.values()].map((p) => p.requiresGrad_());
  const opt = new E.SGD(params, { lr });
  const set = targetTrainSet(ds.train.images, targets, 'mse');
  assert.equal(set.targets, true);
  const loss = trainEpoch(net, state, opt, set, { batchSize: 256, augment: null, gen: new E.Generator(6) });
  const got = state.params.get(bias)!.detach().toNumbers();
  got.forEach((v, i) => assert.ok(Math.abs(v - expected[i]) < 1e-5, `bias ${i}: ${v} vs ${expected[i]}`));
  const direct = logits
    .sub(targets)
    .pow(2)
    .sum()
    .mul(0.5 / 30)
    .item();
  assert.ok(Math.abs(loss - direct) < 1e-4 * direct, `loss ${loss} vs ${direct}`);

  const soft = targetTrainSet(ds.train.images, targets, 'softmax');
  assert.equal(soft.targets, undefined);
  assert.ok(Math.abs(soft.labels.sum(1).sub(1).abs().max().item()) < 1e-6, 'softmax rows are probabilities');
  const hard = targetTrainSet(ds.train.images, targets, 'argmax');
  assert.deepEqual(hard.labels.toNumbers(), ds.train.labels.toNumbers());
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

test('the random-subset baseline draws a fresh subset for every network (ipc per class each)', () => {
  process.env.DISTILLERY_CACHE = tempDir('cache-draws');
  const drawn: number[][] = [];
  // The dataset, with gather() recording which training images each network gets.
  const gather = ds.gather.bind(ds);
  const spy = new Proxy(ds, {
    get: (target, key) => {
      if (key === 'gather')
        return (indices: number[]) => {
          drawn.push([...indices]);
          return gather(indices);
        };
      const value = Reflect.get(target, key, target) as unknown;
      return typeof value === 'function' ? (value as () => unknown).bind(target) : value;
    },
  });
  const o = {
    models: ['ConvNetW32'],
    runs: 4,
    protocol: { ...defaultProtocol('mnist'), epochs: 1 },
    seed: 0,
  };
  randomSubsetBaseline(spy, 2, o);
  assert.equal(drawn.length, 4, 'one subset per network');
  for (const d of drawn) {
    const perClass = [0, 1, 2].map((c) => d.filter((i) => ds.train.labels.select(0, i).item() === c).length);
    assert.deepEqual(perClass, [2, 2, 2]);
  }
  assert.equal(
    new Set(drawn.map((d) => [...d].sort((a, b) => a - b).join(','))).size,
    4,
    'four different subsets',
  );
});
