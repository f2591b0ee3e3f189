import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as E from '../../src/engine/index.js';
import { loadDataset } from '../../src/data/registry.js';
import {
  ForgettingCounter,
  herding,
  kCenter,
  mostForgotten,
  selectCoreset,
  selectionNetwork,
  trainFeatureNet,
} from '../../src/coreset/index.js';
import { tempDir, writeSquaresFile } from '../fixtures.js';

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

test('forgetting ranks the most forgotten first; ties broken by the seed', () => {
  const picked = mostForgotten([0, 3, 0, 1, 3], 3, new E.Generator(0));
  assert.deepEqual(picked.slice(0, 2).sort(), [1, 4]);
  assert.equal(picked[2], 3);
  const other = [1, 2, 3, 4, 5].map((s) => mostForgotten([0, 3, 0, 1, 3], 2, new E.Generator(s)).join());
  assert.ok(new Set(other).size > 1, 'the tie between #1 and #4 is broken by the seed');
});

test("forgetting events are counted as DeepCore's after_loss: correct, then wrong in a later minibatch", () => {
  const c = new ForgettingCounter(3);
  // Example 0: learned, forgotten, learned, forgotten = 2 events. 1: never learned = 0. 2: learned and kept = 0.
  for (const correct of [
    [1, 0, 1],
    [0, 0, 1],
    [1, 0, 1],
    [0, 0, 1],
  ])
    c.observe([0, 1, 2], correct);
  assert.deepEqual([...c.events], [2, 0, 0]);
  // Minibatches see different examples: only an example's own previous outcome counts.
  const d = new ForgettingCounter(2);
  d.observe([0], [1]);
  d.observe([1], [0]);
  d.observe([0, 1], [0, 0]);
  assert.deepEqual([...d.events], [1, 0]);
});

test('the selection network is trained once and then read from the cache (weights, forgetting counts)', () => {
  process.env.DISTILLERY_CACHE = tempDir('selection-cache');
  const ds = loadDataset(writeSquaresFile({ classes: 3, perClass: 8 }));
  const o = { model: 'ConvNetW8', epochs: 2, batchSize: 8 };
  let trained = 0;
  const a = selectionNetwork(ds, 3, { ...o, onTrain: () => trained++ });
  const b = selectionNetwork(ds, 3, { ...o, onTrain: () => trained++ });
  assert.equal(trained, 1);
  assert.deepEqual([...a.forgetting], [...b.forgetting]);
  for (const [k, t] of a.state.params) assert.equal(t.sub(b.state.params.get(k)!).abs().max().item(), 0, k);
  selectionNetwork(ds, 4, { ...o, onTrain: () => trained++ });
  assert.equal(trained, 2, 'another seed is another network');
  // A truncated cache file (a crash of another tool, a full disk) is trained again and replaced.
  const dir = join(process.env.DISTILLERY_CACHE, 'selection');
  for (const f of readdirSync(dir)) writeFileSync(join(dir, f), readFileSync(join(dir, f)).subarray(0, 100));
  const c = selectionNetwork(ds, 3, { ...o, onTrain: () => trained++ });
  assert.equal(trained, 3);
  assert.deepEqual([...c.forgetting], [...a.forgetting], 'the same network again');
  selectionNetwork(ds, 3, { ...o, onTrain: () => trained++ });
  assert.equal(trained, 3, 'and cached again');
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
