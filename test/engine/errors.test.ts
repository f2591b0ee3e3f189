// Bad input becomes an Error with a useful message; the process keeps running.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as E from '../../src/engine/index.js';
import { native } from '../../src/engine/native.js';

test('shape mismatches name the op and the sizes', () => {
  assert.throws(
    () => E.ones([2, 3]).matmul(E.ones([4, 5])),
    /matmul: mat1 and mat2 shapes cannot be multiplied \(2x3 and 4x5\)/,
  );
  assert.throws(
    () => E.ones([3]).add(E.ones([4])),
    /add: The size of tensor a \(3\) must match the size of tensor b \(4\)/,
  );
  assert.throws(
    () => E.cat([E.ones([2, 2]), E.ones([3, 3])], 0),
    /cat: Sizes of tensors must match except in dimension 0/,
  );
  assert.throws(() => E.cat([]), /cat: needs at least one tensor/);
  assert.deepEqual(E.ones([2]).add(1).toList(), [2, 2], 'the engine still works');
});

test('wrong dtypes are reported, not miscomputed', () => {
  assert.throws(
    () => E.ones([2]).indexSelect(0, E.ones([1])),
    /indexSelect: index_select\(\): Expected dtype int(32|64)/,
  );
  assert.throws(() => E.nn.oneHot(E.ones([2]), 3), /oneHot: labels must be int64, got float32/);
  assert.throws(
    () => E.ones([2], { dtype: 'float64' }).matmul(E.ones([2, 1])),
    /matmul: expected .*(Double|Float)/i,
  );
  assert.throws(() => E.tensor([1, 2], { dtype: 'complex' as E.DType }), /unknown dtype 'complex'/);
  assert.throws(
    () => E.ones([2, 2]).item(),
    /item: item\(\) needs a tensor with exactly one element, got 4 elements/,
  );
});

test('unknown devices and invalid handles', () => {
  assert.throws(() => E.ones([2]).to({ device: 'tpu' as E.Device }), /to: unknown device 'tpu'/);
  assert.throws(() => native.add({} as never, 1), /argument 0 is not a tensor handle/);
  assert.throws(() => native.add(native.generatorNew(1) as never, 1), /argument 0 is not a tensor handle/);
  assert.throws(
    () =>
      native.conv2d(
        E.ones([1, 1, 3, 3]).handle,
        E.ones([1, 1, 2, 2]).handle,
        null,
        'x' as never,
        [0, 0],
        [1, 1],
        1,
      ),
    /argument 3 must be an array of integers/,
  );
  assert.deepEqual(E.ones([1]).toList(), [1]);
});

test('non-finite values are values, and can be detected', () => {
  const t = E.tensor([1, 0]).div(0);
  assert.deepEqual(t.isfinite().toList(), [false, false]);
  assert.deepEqual(t.isnan().toList(), [false, true]);
});
