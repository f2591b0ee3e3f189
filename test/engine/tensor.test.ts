import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as E from '../../src/engine/index.js';
import { assertClose, assertShape } from '../helpers.js';

test('creation: constants, ranges, eye, nested and typed arrays', () => {
  assert.deepEqual(E.zeros([2, 3]).toList(), [
    [0, 0, 0],
    [0, 0, 0],
  ]);
  assert.deepEqual(E.ones([2]).toList(), [1, 1]);
  assert.deepEqual(E.full([2], 7).toList(), [7, 7]);
  assert.deepEqual(E.arange(5).toList(), [0, 1, 2, 3, 4]);
  assert.equal(E.arange(5).dtype, 'int64');
  assertClose(E.arange(0, 1, 0.25), [0, 0.25, 0.5, 0.75]);
  assertClose(E.linspace(0, 1, 5), [0, 0.25, 0.5, 0.75, 1]);
  assert.deepEqual(E.eye(2).toList(), [
    [1, 0],
    [0, 1],
  ]);
  const t = E.tensor([
    [1, 2, 3],
    [4, 5, 6],
  ]);
  assertShape(t, [2, 3]);
  assert.equal(t.dtype, 'float32');
  assert.deepEqual(E.tensor([true, false]).toList(), [true, false]);
  assert.equal(E.tensor(new Int32Array([1, 2])).dtype, 'int32');
  assert.deepEqual(E.tensor(new Float64Array([1, 2, 3, 4]), { shape: [2, 2] }).toList(), [
    [1, 2],
    [3, 4],
  ]);
  assert.equal(E.tensor(3.5).item(), 3.5);
  assert.throws(() => E.tensor([[1, 2], [3]]), /ragged nested array: data\[1\]/);
  assert.throws(
    () => E.tensor(new Float32Array(3), { shape: [2, 2] }),
    /needs 4 elements but the data has 3/,
  );
  assert.throws(() => E.zeros([2, -1]), /non-negative integers/);
});

test('dtype round trips keep values', () => {
  const values = [0, 1, 2, 100, 255];
  for (const dtype of [
    'float32',
    'float64',
    'int64',
    'int32',
    'uint8',
    'int16',
    'int8',
    'float16',
    'bfloat16',
  ] as const) {
    const t = E.tensor(
      values.map((v) => (dtype === 'int8' ? v % 100 : v)),
      { dtype },
    );
    assert.equal(t.dtype, dtype);
    assert.deepEqual(
      t.to('float64').toNumbers(),
      values.map((v) => (dtype === 'int8' ? v % 100 : v)),
      dtype,
    );
  }
  const b = E.tensor([0, 2, 0]).to('bool');
  assert.deepEqual(b.toList(), [false, true, false]);
  assert.ok(E.tensor([1.5]).to('int64').toArray() instanceof BigInt64Array);
  assertClose(E.tensor([0.1]).to('bfloat16').float(), [0.1], 1e-2);
});

test('device round trip on the CPU; unknown or missing devices give clear errors', () => {
  const t = E.tensor([1, 2]).to({ device: 'cpu' });
  assert.equal(t.device, 'cpu');
  assert.deepEqual(t.cpu().toList(), [1, 2]);
  assert.throws(
    () => E.zeros([2], { device: 'gpu' as E.Device }),
    /unknown device 'gpu' \(expected 'cpu', 'cuda' or 'cuda:N'\)/,
  );
  if (!E.cudaAvailable()) {
    assert.throws(() => E.zeros([2], { device: 'cuda' }), /device 'cuda' is not available/);
  } else {
    const g = E.tensor([1, 2]).to({ device: 'cuda' });
    assert.equal(g.device, 'cuda:0');
    assert.deepEqual(g.cpu().toList(), [1, 2]);
  }
});

test('shape ops', () => {
  const x = E.arange(24).reshape(2, 3, 4);
  assertShape(x.permute(2, 0, 1), [4, 2, 3]);
  assertShape(x.transpose(0, 2), [4, 3, 2]);
  assertShape(x.flatten(1), [2, 12]);
  assertShape(x.view(6, 4), [6, 4]);
  assertShape(x.unsqueeze(0).squeeze(0), [2, 3, 4]);
  assertShape(E.ones([1, 3]).expand(4, 3), [4, 3]);
  assert.deepEqual(E.tensor([1, 2]).repeat(2).toList(), [1, 2, 1, 2]);
  assert.deepEqual(E.cat([E.tensor([1]), E.tensor([2, 3])]).toList(), [1, 2, 3]);
  assertShape(E.stack([E.ones([2]), E.zeros([2])], 1), [2, 2]);
  assert.deepEqual(
    E.arange(5)
      .split(2)
      .map((t) => t.toList()),
    [[0, 1], [2, 3], [4]],
  );
  assert.deepEqual(
    E.arange(6)
      .split([1, 5])
      .map((t) => t.numel),
    [1, 5],
  );
  assert.equal(E.arange(6).chunk(3).length, 3);
  assert.deepEqual(E.arange(6).narrow(0, 2, 2).toList(), [2, 3]);
  assert.deepEqual(E.arange(6).slice(0, 1, 6, 2).toList(), [1, 3, 5]);
  assert.deepEqual(E.arange(6).slice(0, -2).toList(), [4, 5]);
  assert.deepEqual(
    E.arange(10, 15)
      .indexSelect(0, E.tensor([4, 0], { dtype: 'int64' }))
      .toList(),
    [14, 10],
  );
  assert.deepEqual(
    E.tensor([
      [1, 2],
      [3, 4],
    ])
      .gather(1, E.tensor([[1], [0]], { dtype: 'int64' }))
      .toList(),
    [[2], [3]],
  );
  assert.deepEqual(
    E.zeros([3])
      .scatter(0, E.tensor([2], { dtype: 'int64' }), 5)
      .toList(),
    [0, 0, 5],
  );
  assert.deepEqual(
    E.zeros([3])
      .scatterAdd(0, E.tensor([1, 1], { dtype: 'int64' }), E.tensor([2, 3]))
      .toList(),
    [0, 5, 0],
  );
  assert.deepEqual(
    E.tensor([1, 2, 3])
      .maskedFill(E.tensor([true, false, true]), 0)
      .toList(),
    [0, 2, 0],
  );
  assert.deepEqual(E.where(E.tensor([true, false]), E.tensor([1, 2]), 9).toList(), [1, 9]);
  assert.deepEqual(E.tensor([1, 2, 3]).flip(0).toList(), [3, 2, 1]);
  assert.deepEqual(E.tensor([1, 2, 3]).roll(1, 0).toList(), [3, 1, 2]);
  assert.deepEqual(E.nn.pad(E.ones([1, 1, 1, 1]), [1, 0, 0, 1]).toList(), [
    [
      [
        [0, 1],
        [0, 0],
      ],
    ],
  ]);
  assert.deepEqual(E.nn.pad(E.tensor([[[1, 2, 3]]]), [1, 1], { mode: 'reflect' }).toList(), [
    [[2, 1, 2, 3, 2]],
  ]);
  assert.throws(() => E.arange(6).reshape(4, 2), /reshape: shape '\[4, 2\]' is invalid for input of size 6/);
});

test('elementwise arithmetic broadcasts and accepts scalars', () => {
  const a = E.tensor([
    [1, 2],
    [3, 4],
  ]);
  const b = E.tensor([10, 20]);
  assert.deepEqual(a.add(b).toList(), [
    [11, 22],
    [13, 24],
  ]);
  assert.deepEqual(a.sub(1).toList(), [
    [0, 1],
    [2, 3],
  ]);
  assert.deepEqual(a.add(b, 2).toList(), [
    [21, 42],
    [23, 44],
  ]);
  assert.deepEqual(a.mul(2).div(4).toList(), [
    [0.5, 1],
    [1.5, 2],
  ]);
  assert.deepEqual(a.pow(2).toList(), [
    [1, 4],
    [9, 16],
  ]);
  assert.deepEqual(a.rsub(10).toList(), [
    [9, 8],
    [7, 6],
  ]);
  assert.deepEqual(a.maximum(2.5).toList(), [
    [2.5, 2.5],
    [3, 4],
  ]);
  assert.deepEqual(a.minimum(E.tensor([2, 2])).toList(), [
    [1, 2],
    [2, 2],
  ]);
  assert.deepEqual(a.gt(2).toList(), [
    [false, false],
    [true, true],
  ]);
  assert.deepEqual(a.eq(E.tensor([1, 0])).toList(), [
    [true, false],
    [false, false],
  ]);
  assert.deepEqual(a.gt(1).logicalAnd(a.lt(4)).toList(), [
    [false, true],
    [true, false],
  ]);
  assert.deepEqual(E.tensor([true, false]).logicalNot().toList(), [false, true]);
  assertClose(E.tensor([-1, 0, 2]).abs(), [1, 0, 2]);
  assertClose(E.tensor([0, 1]).exp(), [1, Math.E]);
  assertClose(E.tensor([1, Math.E]).log(), [0, 1]);
  assertClose(E.tensor([4, 9]).sqrt(), [2, 3]);
  assertClose(E.tensor([4]).rsqrt(), [0.5]);
  assertClose(E.tensor([0, Math.PI / 2]).sin(), [0, 1]);
  assertClose(E.tensor([0]).cos(), [1]);
  assertClose(E.tensor([-3, 0, 2]).sign(), [-1, 0, 1]);
  assertClose(E.tensor([-3, 0.5, 2]).clamp(-1, 1), [-1, 0.5, 1]);
  assertClose(E.tensor([-1, 1]).neg(), [1, -1]);
});

test('activations match their formulas', () => {
  const x = E.tensor([-2, -0.5, 0, 0.5, 2], { dtype: 'float64' });
  const v = [-2, -0.5, 0, 0.5, 2];
  const sig = (z: number) => 1 / (1 + Math.exp(-z));
  assertClose(
    x.relu(),
    v.map((z) => Math.max(0, z)),
  );
  assertClose(
    x.leakyRelu(0.1),
    v.map((z) => (z > 0 ? z : 0.1 * z)),
  );
  assertClose(x.sigmoid(), v.map(sig));
  assertClose(x.tanh(), v.map(Math.tanh));
  assertClose(
    x.silu(),
    v.map((z) => z * sig(z)),
  );
  assertClose(
    x.softplus(),
    v.map((z) => Math.log1p(Math.exp(z))),
  );
  assertClose(
    x.gelu('tanh'),
    v.map((z) => 0.5 * z * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (z + 0.044715 * z ** 3)))),
  );
});

test('reductions with dims and keepdim', () => {
  const x = E.tensor(
    [
      [1, 2, 3],
      [4, 5, 6],
    ],
    { dtype: 'float64' },
  );
  assert.equal(x.sum().item(), 21);
  assert.deepEqual(x.sum(0).toList(), [5, 7, 9]);
  assertShape(x.sum(1, true), [2, 1]);
  assert.deepEqual(x.mean(1).toList(), [2, 5]);
  assertClose(x.var(1), [1, 1]);
  assertClose(x.var(1, { correction: 0 }), [2 / 3, 2 / 3]);
  assertClose(x.std(), [Math.sqrt(3.5)]);
  assert.equal(x.max().item(), 6);
  const m = x.max(1);
  assert.deepEqual(m.values.toList(), [3, 6]);
  assert.deepEqual(m.indices.toList(), [2, 2]);
  assert.deepEqual(x.min(0).values.toList(), [1, 2, 3]);
  assert.deepEqual(x.argmax(0).toList(), [1, 1, 1]);
  assert.deepEqual(x.argmin(1).toList(), [0, 0]);
  assertClose(x.norm(), [Math.sqrt(91)]);
  assertClose(x.norm(1, 1), [6, 15]);
  assertClose(x.logsumexp(1), [
    Math.log(Math.exp(1) + Math.exp(2) + Math.exp(3)),
    Math.log(Math.exp(4) + Math.exp(5) + Math.exp(6)),
  ]);
  assert.deepEqual(x.cumsum(1).toList(), [
    [1, 3, 6],
    [4, 9, 15],
  ]);
  assert.deepEqual(x.topk(2, 1).values.toList(), [
    [3, 2],
    [6, 5],
  ]);
});

test('in-place updates', () => {
  const p = E.tensor([1, 2]);
  p.add_(E.tensor([1, 1]), 2)
    .mul_(2)
    .sub_(1);
  assert.deepEqual(p.toList(), [5, 7]);
  p.addcmul_(E.tensor([1, 1]), E.tensor([2, 3]), 0.5).addcdiv_(E.tensor([4, 4]), E.tensor([2, 4]), 1);
  assert.deepEqual(p.toList(), [8, 9.5]);
  p.copy_(E.tensor([3, 4]))
    .fill_(1)
    .zero_();
  assert.deepEqual(p.toList(), [0, 0]);
  const leaf = E.ones([2]).requiresGrad_();
  assert.throws(
    () => leaf.add_(1),
    /add_: a leaf Variable that requires grad is being used in an in-place operation/,
  );
  E.noGrad(() => leaf.add_(1));
  assert.deepEqual(leaf.toList(), [2, 2]);
});

test('matrix products and linear algebra', () => {
  const a = E.tensor(
    [
      [4, 2],
      [2, 3],
    ],
    { dtype: 'float64' },
  );
  const b = E.tensor([[1], [2]], { dtype: 'float64' });
  assert.deepEqual(a.matmul(b).toList(), [[8], [8]]);
  assert.deepEqual(a.mm(b).toList(), [[8], [8]]);
  assertShape(E.ones([3, 2, 4]).bmm(E.ones([3, 4, 5])), [3, 2, 5]);
  assert.deepEqual(
    E.tensor([1, 2])
      .outer(E.tensor([3, 4]))
      .toList(),
    [
      [3, 4],
      [6, 8],
    ],
  );
  assertClose(E.linalg.einsum('ij,jk->ik', a, b), [8, 8]);
  const L = E.linalg.cholesky(a);
  assertClose(L.matmul(L.t()), [4, 2, 2, 3], 1e-12);
  const x = E.linalg.choleskySolve(b, L);
  assertClose(a.matmul(x), [1, 2], 1e-12);
  assertClose(a.matmul(E.linalg.solve(a, b)), [1, 2], 1e-12);
  assertClose(a.matmul(E.linalg.inv(a)), [1, 0, 0, 1], 1e-12);
  assertClose(a.matmul(E.linalg.pinv(a)), [1, 0, 0, 1], 1e-10);
  const { eigenvalues, eigenvectors } = E.linalg.eigh(a);
  const lam = eigenvalues.toNumbers();
  assertClose(lam, [(7 - Math.sqrt(17)) / 2, (7 + Math.sqrt(17)) / 2], 1e-12);
  assertClose(a.matmul(eigenvectors), eigenvectors.mul(eigenvalues).toNumbers(), 1e-12);
  const m = E.tensor(
    [
      [1, 2, 3],
      [4, 5, 6],
    ],
    { dtype: 'float64' },
  );
  const { U, S, Vh } = E.linalg.svd(m);
  assertClose(U.mul(S).matmul(Vh), m.toNumbers(), 1e-12);
  const { Q, R } = E.linalg.qr(m.t());
  assertClose(Q.matmul(R), m.t().toNumbers(), 1e-12);
  const { sign, logabsdet } = E.linalg.slogdet(a);
  assert.equal(sign.item(), 1);
  assertClose(logabsdet, [Math.log(8)], 1e-12);
  assertClose(E.linalg.det(a), [8], 1e-12);
  assert.throws(() => E.linalg.cholesky(m), /cholesky: expected a square matrix/);
  assert.throws(
    () =>
      E.linalg.cholesky(
        E.tensor(
          [
            [1, 2],
            [2, 1],
          ],
          { dtype: 'float64' },
        ),
      ),
    /cholesky: .*not positive-definite/,
  );
});

test('seeded generators reproduce draws and restore their state', () => {
  const a = E.randn([5], { generator: new E.Generator(42) }).toNumbers();
  const b = E.randn([5], { generator: new E.Generator(42) }).toNumbers();
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, E.randn([5], { generator: new E.Generator(43) }).toNumbers());
  const g = new E.Generator(7);
  E.rand([3], { generator: g });
  const state = g.getState();
  const next = E.rand([4], { generator: g }).toNumbers();
  g.setState(state);
  assert.deepEqual(E.rand([4], { generator: g }).toNumbers(), next);
  const perm = E.randperm(10, { generator: g })
    .toNumbers()
    .sort((x, y) => x - y);
  assert.deepEqual(perm, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  const ints = E.randint(3, 6, [100], { generator: g }).toNumbers();
  assert.ok(ints.every((v) => v >= 3 && v < 6));
  assert.throws(() => new E.Generator(-1), /seed must be a non-negative integer/);
  const drop = E.nn.dropout(E.ones([1000]), 0.5, { generator: new E.Generator(1) }).toNumbers();
  assert.ok(drop.every((v) => v === 0 || v === 2));
  const kept = drop.filter((v) => v === 2).length;
  assert.ok(kept > 400 && kept < 600, `dropout kept ${kept} of 1000`);
});
