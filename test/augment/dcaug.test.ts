// DC's evaluation augmentation draws its parameters from the ranges of the reference augment()
// (utils.py): crop offsets np.random.permutation(2 * crop)[0] in [0, 2 crop - 1], scale factors
// np.random.uniform(1 - s, 1 + s), angles np.random.randint(-45, 45) in [-45, 44], one op per image
// uniform over the strategy. (The ops themselves are compared with the reference in
// test/reference/protocol.test.ts.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as E from '../../src/engine/index.js';
import { DcAugment } from '../../src/augment/index.js';

test("DcAugment.sample draws every op's parameters from the reference ranges, ops uniformly", () => {
  const aug = new DcAugment('crop_scale_rotate_noise');
  const n = 8000;
  const draws = aug.sample(n, new E.Generator(3));
  const by = (op: string) => draws.filter((d) => d.op === op);
  for (const op of aug.ops) {
    const share = by(op).length / n;
    assert.ok(Math.abs(share - 0.25) < 0.025, `${op} drawn for ${(100 * share).toFixed(1)} % of the images`);
  }
  const crops = by('crop').flatMap((d) => [d.a, d.b]);
  assert.deepEqual(
    [...new Set(crops)].sort((a, b) => a - b),
    [0, 1, 2, 3, 4, 5, 6, 7],
  );
  const angles = by('rotate').map((d) => d.a);
  assert.ok(angles.every(Number.isInteger));
  assert.equal(Math.min(...angles), -45);
  assert.equal(Math.max(...angles), 44);
  const factors = by('scale').flatMap((d) => [d.a, d.b]);
  assert.ok(Math.min(...factors) >= 0.8 && Math.max(...factors) < 1.2);
  assert.ok(Math.min(...factors) < 0.81 && Math.max(...factors) > 1.19, 'the whole range is used');
  const mean = factors.reduce((a, b) => a + b, 0) / factors.length;
  assert.ok(Math.abs(mean - 1) < 0.01, `scale factors centred on 1 (mean ${mean})`);
});
