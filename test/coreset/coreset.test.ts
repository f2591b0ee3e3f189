import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as E from '../../src/engine/index.js';
import { loadDataset } from '../../src/data/registry.js';
import { herding, kCenter, mostForgotten, selectCoreset, trainFeatureNet } from '../../src/coreset/index.js';
import { writeSquaresFile } from '../fixtures.js';

// Five 2-D feature vectors with a clear geometry (no distance ties).
const points = () =>
  E.tensor([
    [0, 0],
    [10.5, 0],
    [4, 1],
    [6, -1],
    [5, 0.2],
  ]);

test('herding picks the point nearest the mean first, then balances the running sum', () => {
  const f = points();
  // mean (5.1, 0.04): nearest is #4 (5, 0.2). Target 2 mean - sum = (5.2, -0.12): #3 at 1.19 beats #2 at 1.64.
  // Target 3 mean - sum = (4.3, 0.92): #2 at 0.31.
  assert.deepEqual(herding(f, 3), [4, 3, 2]);
});

test('k-center starts at the point nearest the mean and adds the farthest point each time', () => {
  const f = points();
  // #4 is nearest the mean; farthest from it is #1 (5.50), then #0 (5.00 from #4, 10.5 from #1).
  assert.deepEqual(kCenter(f, 3), [4, 1, 0]);
});

test('forgetting ranks never-learned first, then most forgotten; ties broken by the seed', () => {
  const picked = mostForgotten([0, 3, Infinity, 1, 3], 3, new E.Generator(0));
  assert.equal(picked[0], 2);
  assert.deepEqual(picked.slice(1).sort(), [1, 4]);
});

test('every method selects ipc images of each class from that class', () => {
  const ds = loadDataset(writeSquaresFile({ classes: 3, perClass: 8 }));
  const feature = trainFeatureNet(ds, new E.Generator(0), { model: 'ConvNetW32', epochs: 2 });
  assert.equal(feature.forgetting.length, 24);
  for (const method of ['random', 'herding', 'kcenter', 'forgetting'] as const) {
    const idx = selectCoreset(method, ds, 2, new E.Generator(1), feature);
    assert.equal(idx.length, 6, method);
    assert.equal(new Set(idx).size, 6, `${method} picks distinct images`);
    const labels = ds.gather(idx).labels.toNumbers();
    assert.deepEqual(labels, [0, 0, 1, 1, 2, 2], method);
  }
  assert.deepEqual(
    selectCoreset('random', ds, 2, new E.Generator(5)),
    selectCoreset('random', ds, 2, new E.Generator(5)),
  );
});
