import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as E from '../../src/engine/index.js';
import { DSA, defaultStrategy, type Group, type SegmentParams } from '../../src/augment/index.js';
import { OpSequence } from '../../src/augment/sequence.js';
import { assertClose } from '../helpers.js';

const img = (seed: number, n = 2, c = 3, s = 8) =>
  E.randn([n, c, s, s], { dtype: 'float64', generator: new E.Generator(seed) });
const draw = (group: Group, u: number[]): SegmentParams => ({ group, u });

test('every group is differentiable with respect to the pixels (float64 gradcheck, fixed draws)', () => {
  const dsa = new DSA();
  const draws: SegmentParams[] = [
    draw('color', [0.3, 0.8, 0.6]),
    draw('crop', [0.9, 0.1, 0]),
    draw('cutout', [0.4, 0.7, 0]),
    draw('flip', [0.2, 0, 0]),
    draw('scale', [0.77, 0.31, 0]),
    draw('rotate', [0.83, 0, 0]),
  ];
  for (const d of draws) {
    const result = E.gradcheck((x) => dsa.apply(x, [d], [2]), [img(1, 2, 2, 6)]);
    assert.ok(result.ok && result.relError < 1e-6, `${d.group}: ${JSON.stringify(result)}`);
  }
  const mixed = E.gradcheck((x) => dsa.apply(x, draws.slice(0, 3), [1, 2, 1]), [img(2, 4, 2, 6)]);
  assert.ok(mixed.ok, JSON.stringify(mixed));
});

test('one draw per segment: every image of a segment gets the same transformation', () => {
  const dsa = new DSA();
  const gen = new E.Generator(11);
  for (let trial = 0; trial < 12; trial++) {
    const draws = dsa.sample(1, gen);
    const x = img(trial, 1);
    // Two equal images in one segment stay equal; an independent per-image draw would separate them.
    const t = dsa.apply(E.cat([x, x]), draws, [2]);
    assert.deepEqual(t.select(0, 0).toNumbers(), t.select(0, 1).toNumbers());
  }
});

test('batched per-class draws equal augmenting each class on its own', () => {
  const dsa = new DSA();
  const draws = dsa.sample(4, new E.Generator(3));
  const x = img(4, 8);
  const together = dsa.apply(x, draws, [2, 2, 2, 2]);
  const apart = E.cat(draws.map((d, i) => dsa.apply(x.narrow(0, 2 * i, 2), [d], [2])));
  assertClose(together, apart.toNumbers(), 1e-12);
});

test('draws come from the generator: same seed, same draws; digit strategies have no flip', () => {
  const dsa = new DSA({ strategy: defaultStrategy('mnist') });
  assert.deepEqual(dsa.sample(50, new E.Generator(9)), dsa.sample(50, new E.Generator(9)));
  const groups = new Set(dsa.sample(300, new E.Generator(1)).map((d) => d.group));
  assert.deepEqual([...groups].sort(), ['color', 'crop', 'cutout', 'rotate', 'scale']);
  assert.equal(defaultStrategy('cifar10'), 'color_crop_cutout_flip_scale_rotate');
  assert.throws(() => new DSA({ strategy: 'color_blur' }), /unknown augmentation 'blur'/);
});

test('ops do what the reference does', () => {
  const dsa = new DSA();
  const x = E.arange(16, undefined, 1, { dtype: 'float64' }).reshape(1, 1, 4, 4);
  assert.deepEqual(dsa.apply(x, [draw('flip', [0.1, 0, 0])], [1]).toList(), x.flip(3).toList());
  assert.deepEqual(dsa.apply(x, [draw('flip', [0.9, 0, 0])], [1]).toList(), x.toList());
  // crop on 4 px: shift = int(4 * 0.125 + 0.5) = 1; u = 0.99 -> +1 row, u = 0 -> -1 column.
  const shifted = dsa.apply(x, [draw('crop', [0.99, 0.0, 0])], [1]).toList() as number[][][][];
  assert.deepEqual(shifted[0][0], [
    [0, 4, 5, 6],
    [0, 8, 9, 10],
    [0, 12, 13, 14],
    [0, 0, 0, 0],
  ]);
  // cutout on 4 px: a 2x2 square of zeros
  const cut = dsa.apply(E.ones([1, 1, 4, 4], { dtype: 'float64' }), [draw('cutout', [0.5, 0.5, 0])], [1]);
  assert.equal(cut.sum().item(), 12);
  // brightness only (saturation factor 1 = u 0.5, contrast factor 1 = u 0.5): x + (u - 0.5)
  const bright = dsa.apply(
    E.zeros([1, 3, 2, 2], { dtype: 'float64' }),
    [draw('color', [0.75, 0.5, 0.5])],
    [1],
  );
  assertClose(bright, new Array(12).fill(0.25), 1e-12);
  // scale factor 1 (u = (1 - 1/1.2) / (1.2 - 1/1.2)) keeps the image
  const unit = (1 - 1 / 1.2) / (1.2 - 1 / 1.2);
  assertClose(dsa.apply(x, [draw('scale', [unit, unit, 0])], [1]), x.toNumbers(), 1e-9);
});

test("IDC's / NCFM's DiffAugment sequence: flip, color, one of the rest, cutout, whatever the listed order", () => {
  assert.deepEqual(new OpSequence('color_crop_cutout').steps, ['color', 'crop', 'cutout']);
  assert.deepEqual(new OpSequence('cutout_crop_scale_color_flip_rotate').steps, [
    'flip',
    'color',
    'crop_scale_rotate',
    'cutout',
  ]);
  assert.deepEqual(new OpSequence('color_crop_cutout', ['cutout']).steps, ['color', 'crop']);
  assert.deepEqual(new OpSequence('none').steps, []);
  assert.throws(() => new OpSequence('color_blur'), /unknown augmentation 'blur' in strategy 'color_blur'/);
  // IDC's default sequence draws as single-op DSAs applied in turn, one draw each (IDC's runs depend on it).
  const y = E.rand([2, 1, 8, 8], { generator: new E.Generator(3) });
  const [seq] = new OpSequence('color_crop_cutout').shared([y], new E.Generator(4));
  const gen = new E.Generator(4);
  const byHand = ['color', 'crop', 'cutout'].reduce((acc, g) => {
    const op = new DSA({ strategy: g });
    return op.apply(acc, op.sample(1, gen), [acc.size(0)]);
  }, y);
  assert.deepEqual(seq.toNumbers(), byHand.toNumbers());
  // One shared draw per step: the real and synthetic batches get the same transformation.
  const x = E.rand([3, 1, 8, 8], { generator: new E.Generator(1) });
  const [a, b] = new OpSequence('color_crop_cutout').shared([x, x.clone()], new E.Generator(2));
  assert.deepEqual(a.toNumbers(), b.toNumbers());
});
