import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as E from '../../src/engine/index.js';
import { assertClose } from '../helpers.js';

const f64 = (v: number[]) => E.tensor(v, { dtype: 'float64' });

test('SGD with momentum, dampening and weight decay follows torch.optim.SGD', () => {
  const p = f64([1, -2]);
  const opt = new E.SGD([p], { lr: 0.1, momentum: 0.9, dampening: 0.1, weightDecay: 0.01 });
  const g1 = f64([0.5, 1]);
  const g2 = f64([-1, 2]);
  opt.step([g1]);
  // d1 = g1 + wd p0; buf = d1 (first step: no dampening); p1 = p0 - lr buf
  const d1 = [0.5 + 0.01, 1 - 0.02];
  const p1 = [1 - 0.1 * d1[0], -2 - 0.1 * d1[1]];
  assertClose(p, p1, 1e-12);
  opt.step([g2]);
  const d2 = [-1 + 0.01 * p1[0], 2 + 0.01 * p1[1]];
  const buf = [0.9 * d1[0] + 0.9 * d2[0], 0.9 * d1[1] + 0.9 * d2[1]];
  assertClose(p, [p1[0] - 0.1 * buf[0], p1[1] - 0.1 * buf[1]], 1e-12);
});

test('SGD Nesterov, and gradients read from .grad', () => {
  const p = f64([1]).requiresGrad_();
  const opt = new E.SGD([p], { lr: 0.5, momentum: 0.5, nesterov: true });
  p.mul(3).sum().backward();
  opt.step();
  // buf = 3; d = 3 + 0.5 * 3 = 4.5
  assertClose(p, [1 - 0.5 * 4.5], 1e-12);
  assert.throws(() => new E.SGD([p], { lr: 0.1, nesterov: true }), /Nesterov momentum needs momentum > 0/);
});

test('Adam and AdamW follow their update rules', () => {
  const lr = 0.1;
  const [b1, b2, eps] = [0.9, 0.999, 1e-8];
  const p = f64([1]);
  const adam = new E.Adam([p], { lr, weightDecay: 0.1 });
  const q = f64([1]);
  const adamw = new E.AdamW([q], { lr, weightDecay: 0.1 });
  let m = 0;
  let v = 0;
  let mw = 0;
  let vw = 0;
  let pv = 1;
  let qv = 1;
  for (let t = 1; t <= 3; t++) {
    const g = 0.5 * t;
    adam.step([f64([g])]);
    adamw.step([f64([g])]);
    const ga = g + 0.1 * pv;
    m = b1 * m + (1 - b1) * ga;
    v = b2 * v + (1 - b2) * ga * ga;
    pv -= (lr / (1 - b1 ** t)) * (m / (Math.sqrt(v) / Math.sqrt(1 - b2 ** t) + eps));
    qv *= 1 - lr * 0.1;
    mw = b1 * mw + (1 - b1) * g;
    vw = b2 * vw + (1 - b2) * g * g;
    qv -= (lr / (1 - b1 ** t)) * (mw / (Math.sqrt(vw) / Math.sqrt(1 - b2 ** t) + eps));
  }
  assertClose(p, [pv], 1e-12);
  assertClose(q, [qv], 1e-12);
});

test('AdaBelief follows torch_optimizer.AdaBelief (eps added to the stored moment every step)', () => {
  const [lr, b1, b2, eps] = [0.01, 0.9, 0.999, 1e-3];
  const p = f64([1]);
  const opt = new E.AdaBelief([p], { lr, eps });
  let [m, s, pv] = [0, 0, 1];
  for (let t = 1; t <= 4; t++) {
    const g = t % 2 ? 0.5 * t : -0.3;
    opt.step([f64([g])]);
    m = b1 * m + (1 - b1) * g;
    s = b2 * s + (1 - b2) * (g - m) ** 2 + eps;
    pv -= (lr / (1 - b1 ** t)) * (m / (Math.sqrt(s) / Math.sqrt(1 - b2 ** t) + eps));
  }
  assertClose(p, [pv], 1e-12);
});

test('LAMB follows optax.lamb: Adam direction scaled by the trust ratio ||p|| / ||u|| per tensor', () => {
  const [lr, b1, b2, eps] = [0.01, 0.9, 0.999, 1e-6];
  const p = f64([1, -2]);
  const opt = new E.LAMB([p], { lr });
  let m = [0, 0];
  let v = [0, 0];
  let pv = [1, -2];
  for (let t = 1; t <= 3; t++) {
    const g = [0.5 * t, -0.25];
    opt.step([f64(g)]);
    m = m.map((mi, j) => b1 * mi + (1 - b1) * g[j]);
    v = v.map((vi, j) => b2 * vi + (1 - b2) * g[j] ** 2);
    const u = m.map((mi, j) => mi / (1 - b1 ** t) / (Math.sqrt(v[j] / (1 - b2 ** t)) + eps));
    const trust = Math.hypot(...pv) / Math.hypot(...u);
    pv = pv.map((pi, j) => pi - lr * trust * u[j]);
  }
  assertClose(p, pv, 1e-12);
});

test('optimizer state restores exactly: a resumed run continues bit-identically', () => {
  const gen = new E.Generator(9);
  const grads = Array.from({ length: 6 }, () => E.randn([3], { dtype: 'float64', generator: gen }));
  for (const make of [
    (p: E.Tensor) => new E.SGD([p], { lr: 0.1, momentum: 0.9 }),
    (p: E.Tensor) => new E.Adam([p], { lr: 0.01 }),
  ]) {
    const a = f64([1, 2, 3]);
    const optA = make(a);
    grads.forEach((g) => optA.step([g]));

    const b = f64([1, 2, 3]);
    const optB = make(b);
    grads.slice(0, 3).forEach((g) => optB.step([g]));
    const state = optB.stateDict();
    const saved = b.clone();
    const c = saved;
    const optC = make(c);
    optC.loadStateDict(state);
    grads.slice(3).forEach((g) => optC.step([g]));
    assert.deepEqual(c.toNumbers(), a.toNumbers(), optA.kind);
  }
  const sgd = new E.SGD([f64([1])], { lr: 1 });
  assert.throws(
    () => sgd.loadStateDict({ kind: 'Adam', lr: 1, step: 0, buffers: {} }),
    /state was saved by a Adam optimizer/,
  );
  assert.throws(
    () => sgd.loadStateDict({ kind: 'SGD', lr: 1, step: 0, buffers: { 'momentum.0': f64([1, 2]) } }),
    /has shape \[2\], parameter 0 has \[1\]/,
  );
});

test('learning-rate schedules', () => {
  const step = E.stepSchedule(0.1, 10, 0.5);
  assert.deepEqual([0, 9, 10, 25].map(step), [0.1, 0.1, 0.05, 0.025]);
  const multi = E.multiStepSchedule(0.01, [150], 0.1);
  assert.deepEqual(
    [0, 149, 150, 299].map((e) => +multi(e).toPrecision(6)),
    [0.01, 0.01, 0.001, 0.001],
  );
  const cos = E.cosineSchedule(1, 10, 0.1);
  assertClose([0, 5, 10, 20].map(cos), [1, 0.55, 0.1, 0.1], 1e-12);
  const opt = new E.SGD([f64([0])], { lr: 1 });
  const sched = new E.LRScheduler(opt, E.stepSchedule(1, 1, 0.5));
  sched.step();
  sched.step();
  assert.equal(opt.lr, 0.25);
});
