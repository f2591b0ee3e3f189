// Every differentiable op the methods rely on, checked against central finite
// differences in float64: first order (gradcheck) and second order (gradgradcheck).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as E from '../../src/engine/index.js';

const gen = new E.Generator(1234);
const r = (...shape: number[]) => E.randn(shape, { dtype: 'float64', generator: gen });
const pos = (...shape: number[]) => E.rand(shape, { dtype: 'float64', generator: gen }).add(0.5);

type Case = { name: string; fn: (...xs: E.Tensor[]) => E.Tensor; inputs: E.Tensor[]; secondOrder?: boolean };

const hard = E.tensor([2, 0, 1], { dtype: 'int64' });
const soft = E.nn.softmax(r(3, 4), 1);
const theta = E.tensor(
  [
    [
      [0.83, 0.07, 0.031],
      [-0.11, 0.93, 0.017],
    ],
    [
      [0.97, 0.13, -0.043],
      [0.05, 0.79, 0.061],
    ],
  ],
  { dtype: 'float64' },
);
const cases: Case[] = [
  {
    name: 'conv2d (stride, padding, bias)',
    fn: (x, w, b) => E.nn.conv2d(x, w, b, { stride: 2, padding: 1 }),
    inputs: [r(2, 2, 5, 5), r(3, 2, 3, 3), r(3)],
    secondOrder: true,
  },
  {
    name: 'conv2d (one input channel, channels-last, padding 3: a ConvNet first layer on MNIST)',
    fn: (x, w, b) => E.nn.conv2d(x.contiguous('channelsLast'), w, b, { padding: 3 }),
    inputs: [r(2, 1, 4, 5), r(3, 1, 3, 3), r(3)],
    secondOrder: true,
  },
  {
    name: 'conv2d (4 input channels)',
    fn: (x, w) => E.nn.conv2d(x, w, null, { padding: 1 }),
    inputs: [r(2, 4, 4, 4), r(3, 4, 3, 3)],
    secondOrder: true,
  },
  {
    name: 'conv2d (groups)',
    fn: (x, w) => E.nn.conv2d(x, w, null, { groups: 2 }),
    inputs: [r(1, 4, 4, 4), r(4, 2, 3, 3)],
  },
  {
    name: 'linear',
    fn: (x, w, b) => E.nn.linear(x, w, b),
    inputs: [r(3, 4), r(2, 4), r(2)],
    secondOrder: true,
  },
  {
    name: 'normReluPool (instance norm, odd height: the fused ConvNet block)',
    fn: (x, w, b) => E.nn.normReluPool(x, 3, { weight: w, bias: b }),
    inputs: [r(2, 3, 5, 4), r(3), r(3)],
    secondOrder: true,
  },
  {
    name: 'normReluPool (2 groups of 2 channels)',
    fn: (x, w, b) => E.nn.normReluPool(x, 2, { weight: w, bias: b }),
    inputs: [r(2, 4, 4, 6), r(4), r(4)],
    secondOrder: true,
  },
  {
    name: 'normReluPool, channels-last input (its own kernels), odd width',
    fn: (x, w, b) => E.nn.normReluPool(x.contiguous('channelsLast'), 2, { weight: w, bias: b }),
    inputs: [r(2, 4, 6, 5), r(4), r(4)],
    secondOrder: true,
  },
  {
    name: 'groupNorm (affine)',
    fn: (x, w, b) => E.nn.groupNorm(x, 2, { weight: w, bias: b }),
    inputs: [r(2, 4, 3, 3), r(4), r(4)],
    secondOrder: true,
  },
  {
    name: 'instanceNorm as GroupNorm(C, C) (the ConvNet norm)',
    fn: (x, w, b) => E.nn.groupNorm(x, 3, { weight: w, bias: b }),
    inputs: [r(2, 3, 3, 3), r(3), r(3)],
    secondOrder: true,
  },
  {
    name: 'instanceNorm',
    fn: (x, w, b) => E.nn.instanceNorm(x, { weight: w, bias: b }),
    inputs: [r(2, 3, 3, 3), r(3), r(3)],
    secondOrder: true,
  },
  {
    name: 'batchNorm (training statistics)',
    fn: (x, w, b) => E.nn.batchNorm(x, { weight: w, bias: b, training: true }),
    inputs: [r(4, 3, 2, 2), r(3), r(3)],
    secondOrder: true,
  },
  {
    name: 'batchNorm (eval, running statistics)',
    fn: (x, w, b) =>
      E.nn.batchNorm(x, {
        weight: w,
        bias: b,
        training: false,
        runningMean: E.tensor([0.1, -0.2, 0.3], { dtype: 'float64' }),
        runningVar: E.tensor([1, 2, 0.5], { dtype: 'float64' }),
      }),
    inputs: [r(2, 3, 2, 2), r(3), r(3)],
    secondOrder: true,
  },
  {
    name: 'layerNorm',
    fn: (x, w, b) => E.nn.layerNorm(x, [4], { weight: w, bias: b }),
    inputs: [r(3, 4), r(4), r(4)],
    secondOrder: true,
  },
  { name: 'avgPool2d', fn: (x) => E.nn.avgPool2d(x, 2), inputs: [r(2, 2, 4, 4)], secondOrder: true },
  { name: 'maxPool2d', fn: (x) => E.nn.maxPool2d(x, 2), inputs: [r(2, 2, 4, 4)], secondOrder: true },
  { name: 'adaptiveAvgPool2d', fn: (x) => E.nn.adaptiveAvgPool2d(x, 2), inputs: [r(1, 2, 5, 5)] },
  { name: 'relu', fn: (x) => x.relu().mul(x), inputs: [r(10)], secondOrder: true },
  { name: 'sigmoid', fn: (x) => x.sigmoid(), inputs: [r(10)], secondOrder: true },
  { name: 'tanh', fn: (x) => x.tanh(), inputs: [r(10)], secondOrder: true },
  {
    name: 'leakyRelu, silu, gelu, softplus',
    fn: (x) => x.leakyRelu(0.2).mul(x).add(x.silu()).add(x.gelu()).add(x.softplus()),
    inputs: [r(10)],
    secondOrder: true,
  },
  {
    name: 'softmax / logSoftmax',
    fn: (x) => E.nn.softmax(x, 1).add(E.nn.logSoftmax(x, 1)),
    inputs: [r(3, 4)],
    secondOrder: true,
  },
  {
    name: 'crossEntropy (hard targets)',
    fn: (x) => E.nn.crossEntropy(x, hard),
    inputs: [r(3, 4)],
    secondOrder: true,
  },
  {
    name: 'crossEntropy (hard targets, label smoothing)',
    fn: (x) => E.nn.crossEntropy(x, hard, { labelSmoothing: 0.1 }),
    inputs: [r(3, 4)],
    secondOrder: true,
  },
  {
    name: 'crossEntropy (soft targets, both sides)',
    fn: (x, t) => E.nn.crossEntropy(x, E.nn.softmax(t, 1)),
    inputs: [r(3, 4), soft.clone()],
    secondOrder: true,
  },
  { name: 'mseLoss', fn: (a, b) => E.nn.mseLoss(a, b), inputs: [r(3, 4), r(3, 4)], secondOrder: true },
  { name: 'l1Loss', fn: (a, b) => E.nn.l1Loss(a, b), inputs: [r(3, 4), r(3, 4)] },
  {
    name: 'klDiv',
    fn: (a, b) => E.nn.klDiv(E.nn.logSoftmax(a, 1), E.nn.softmax(b, 1)),
    inputs: [r(3, 4), r(3, 4)],
    secondOrder: true,
  },
  {
    name: 'gridSample (bilinear, through the grid too)',
    fn: (x, theta) => E.nn.gridSample(x, E.nn.affineGrid(theta, [2, 1, 4, 4], false)),
    // Generic affine maps: a near-identity one would put samples exactly on pixel centres, where bilinear
    // interpolation has kinks and finite differences are meaningless.
    inputs: [r(2, 1, 4, 4), theta.clone()],
    // libtorch 1.13 has no derivative for grid_sampler_2d_backward, so there is no
    // gradgradcheck here; the path DSA needs is checked separately below.
  },
  {
    name: 'interpolate (bilinear)',
    fn: (x) => E.nn.interpolate(x, { size: 5, mode: 'bilinear', alignCorners: false }),
    inputs: [r(1, 2, 3, 3)],
    secondOrder: true,
  },
  {
    name: 'interpolate (bicubic)',
    fn: (x) => E.nn.interpolate(x, { scaleFactor: 2, mode: 'bicubic', alignCorners: true }),
    inputs: [r(1, 1, 3, 3)],
  },
  {
    name: 'interpolate (nearest)',
    fn: (x) => E.nn.interpolate(x, { scaleFactor: 2 }),
    inputs: [r(1, 1, 2, 2)],
  },
  {
    name: 'choleskySolve (through b and the factor)',
    fn: (b, m) =>
      E.linalg.choleskySolve(b, E.linalg.cholesky(m.matmul(m.t()).add(E.eye(3, 3, { dtype: 'float64' })))),
    inputs: [r(3, 2), r(3, 3)],
    secondOrder: true,
  },
  {
    name: 'cholesky -> solveTriangular (lower, left) and (upper, right): the KRR solve in two halves',
    fn: (b, m) => {
      const L = E.linalg.cholesky(m.matmul(m.t()).add(E.eye(3, 3, { dtype: 'float64' })));
      const z = E.linalg.solveTriangular(L, b);
      return z.add(E.linalg.solveTriangular(L.t(), b.t(), { upper: true, left: false }).t());
    },
    inputs: [r(3, 2), r(3, 3)],
    secondOrder: true,
  },
  {
    name: 'solve (general square system, through A and b)',
    fn: (a, b) => E.linalg.solve(a.add(E.eye(3, 3, { dtype: 'float64' }).mul(3)), b),
    inputs: [r(3, 3), r(3, 2)],
    secondOrder: true,
  },
  {
    // Eigenvectors are defined up to sign, so only sign-invariant functions of them are differentiable:
    // V diag(f(w)) V^T (a matrix function) and the eigenvalues themselves.
    name: 'eigh (eigenvalues and the matrix function V diag(exp(w)) V^T)',
    fn: (m) => {
      const { eigenvalues: w, eigenvectors: v } = E.linalg.eigh(m.add(m.t()));
      return v.mul(w.exp().unsqueeze(0)).matmul(v.t()).add(w.sum());
    },
    inputs: [r(3, 3)],
    secondOrder: true,
  },
  {
    name: 'matmul, einsum',
    fn: (a, b) => a.matmul(b).add(E.linalg.einsum('ij,jk->ik', a, b)),
    inputs: [r(2, 3), r(3, 2)],
    secondOrder: true,
  },
  {
    name: 'exp, log, sqrt, pow, div',
    fn: (a) =>
      a
        .exp()
        .add(a.log())
        .add(a.sqrt())
        .add(a.pow(3))
        .add(E.ones([5], { dtype: 'float64' }).div(a)),
    inputs: [pos(5)],
    secondOrder: true,
  },
  {
    name: 'sum, mean, var, norm, logsumexp',
    fn: (a) => E.stack([a.sum(), a.mean(), a.var(), a.norm(), a.logsumexp([0, 1])]),
    inputs: [r(3, 4)],
    secondOrder: true,
  },
  {
    name: 'pixelShuffle, pad, flip, roll',
    fn: (x) => E.nn.pad(E.nn.pixelShuffle(x, 2), [1, 1, 1, 1]).flip(3).roll(1, 2),
    inputs: [r(1, 4, 2, 2)],
  },
];

for (const c of cases) {
  test(`gradcheck: ${c.name}`, () => {
    const result = E.gradcheck(c.fn, c.inputs);
    assert.ok(result.ok, `first order mismatch: ${JSON.stringify(result)}`);
    assert.ok(result.relError < 1e-6, `relative error ${result.relError}`);
  });
  if (c.secondOrder) {
    test(`gradgradcheck: ${c.name}`, () => {
      const result = E.gradgradcheck(c.fn, c.inputs);
      assert.ok(result.ok, `second order mismatch: ${JSON.stringify(result)}`);
      assert.ok(result.relError < 1e-5, `relative error ${result.relError}`);
    });
  }
}

test('gradient matching through an augmentation: d/dx of <dL(net(gridSample(x)))/dw, u>', () => {
  // DSA differentiates a parameter gradient (taken with createGraph) with respect to the
  // images fed through grid sampling: double backward through the network, first order
  // through gridSample. This is the path, checked against finite differences.
  const w = r(3, 8);
  const u = r(3, 8);
  const target = E.tensor([0, 2], { dtype: 'int64' });
  const fn = (x: E.Tensor) => {
    const warped = E.nn.gridSample(x, E.nn.affineGrid(theta, [2, 2, 2, 2], false));
    const wLeaf = w.detach().requiresGrad_();
    const loss = E.nn.crossEntropy(E.nn.linear(warped.flatten(1).tanh(), wLeaf), target);
    const [g] = E.grad(loss, [wLeaf], { createGraph: true });
    return g.mul(u).sum();
  };
  const result = E.gradcheck(fn, [r(2, 2, 2, 2)]);
  assert.ok(result.ok && result.relError < 1e-6, JSON.stringify(result));
});

test('gradcheck detects a wrong gradient', () => {
  // x * detach(x) has true derivative 2x but autograd sees only x: the check must fail.
  const result = E.gradcheck((x) => x.mul(x.detach()), [r(4)]);
  assert.equal(result.ok, false);
  assert.ok(result.relError > 0.1);
});

test('gradgradcheck detects a wrong second derivative', () => {
  // f = 2 x stop(x) - stop(x)^2 has the value x^2 and the right first derivative 2x,
  // but its graph carries no second derivative (autograd says 0, the truth is 2).
  const f = (x: E.Tensor) => {
    const s = x.detach();
    return x.mul(s).mul(2).sub(s.pow(2));
  };
  assert.equal(E.gradcheck(f, [r(4)]).ok, true);
  assert.equal(E.gradgradcheck(f, [r(4)]).ok, false);
});

test('gradcheck refuses float32 inputs', () => {
  assert.throws(
    () => E.gradcheck((x) => x, [E.ones([2])]),
    /input 0 is float32; finite differences need float64/,
  );
});
