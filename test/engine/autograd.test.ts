import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as E from '../../src/engine/index.js';
import { assertClose } from '../helpers.js';

test('grad of a scalar, with gradOutputs for non-scalars, and unused inputs', () => {
  const x = E.tensor([1, 2, 3], { dtype: 'float64' }).requiresGrad_();
  const [g] = E.grad(x.pow(3).sum(), [x]);
  assertClose(g, [3, 12, 27]);
  const [g2] = E.grad(x.mul(2), [x], { gradOutputs: [E.tensor([1, 0, 1], { dtype: 'float64' })] });
  assertClose(g2, [2, 0, 2]);
  assert.throws(() => E.grad(x.mul(2), [x]), /output of shape \[3\] is not a scalar: pass gradOutputs/);
  const unused = E.ones([2], { dtype: 'float64' }).requiresGrad_();
  assert.throws(() => E.grad(x.sum(), [x, unused]), /appears to not have been used in the graph/);
  const [gx, gu] = E.grad(x.sum(), [x, unused], { allowUnused: true });
  assertClose(gx as E.Tensor, [1, 1, 1]);
  assert.equal(gu, null);
});

test('gradients of gradients to third order', () => {
  const x = E.tensor([0.5, 2], { dtype: 'float64' }).requiresGrad_();
  const y = x.pow(4).sum();
  const [d1] = E.grad(y, [x], { createGraph: true });
  const [d2] = E.grad(d1.sum(), [x], { createGraph: true });
  const [d3] = E.grad(d2.sum(), [x]);
  assertClose(d1, [4 * 0.125, 4 * 8]);
  assertClose(d2, [12 * 0.25, 12 * 4]);
  assertClose(d3, [24 * 0.5, 24 * 2]);
});

test('backward accumulates into .grad; zeroing and retainGraph', () => {
  const w = E.tensor([1, -1]).requiresGrad_();
  const loss = w.mul(E.tensor([3, 4])).sum();
  loss.backward(undefined, { retainGraph: true });
  assert.deepEqual((w.grad as E.Tensor).toList(), [3, 4]);
  loss.backward();
  assert.deepEqual((w.grad as E.Tensor).toList(), [6, 8]);
  assert.throws(() => loss.backward(), /backward: Trying to backward through the graph a second time/);
  w.grad = null;
  assert.equal(w.grad, null);
  assert.equal(w.isLeaf, true);
  assert.equal(w.mul(2).isLeaf, false);
});

test('noGrad records nothing; enableGrad re-enables inside it; modes restore after throws', () => {
  const w = E.ones([2]).requiresGrad_();
  const y = E.noGrad(() => w.mul(2));
  assert.equal(y.requiresGrad, false);
  const z = E.noGrad(() => E.enableGrad(() => w.mul(2)));
  assert.equal(z.requiresGrad, true);
  assert.throws(() =>
    E.noGrad(() => {
      throw new Error('boom');
    }),
  );
  assert.equal(E.isGradEnabled(), true);
  assert.equal(w.detach().requiresGrad, false);
});

test('unrolled SGD: the meta-gradient through two inner steps equals finite differences', () => {
  // theta_{t+1} = theta_t - lr * dL(x_syn; theta_t)/dtheta, outer loss on real data:
  // the shape of DD / MTT, with createGraph through every inner step.
  const gen = new E.Generator(5);
  const xReal = E.randn([6, 3], { dtype: 'float64', generator: gen });
  const yReal = E.randn([6, 2], { dtype: 'float64', generator: gen });
  const theta0 = E.randn([3, 2], { dtype: 'float64', generator: gen });
  const yv = E.randn([4, 2], { dtype: 'float64', generator: gen });
  const outer = (xSyn: E.Tensor, lr: E.Tensor) => {
    let theta = theta0.detach().requiresGrad_();
    for (let step = 0; step < 2; step++) {
      const inner = E.nn.mseLoss(xSyn.matmul(theta).tanh(), yv);
      const [g] = E.grad(inner, [theta], { createGraph: true });
      theta = theta.sub(g.mul(lr));
    }
    return E.nn.mseLoss(xReal.matmul(theta), yReal);
  };
  const result = E.gradcheck(outer, [
    E.randn([4, 3], { dtype: 'float64', generator: gen }),
    E.tensor([0.3], { dtype: 'float64' }),
  ]);
  assert.ok(result.ok && result.relError < 1e-6, JSON.stringify(result));
});
