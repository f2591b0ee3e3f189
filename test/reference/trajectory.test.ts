// MTT's and TESLA's loss and gradients against their reference code on one tiny iteration (a
// transcription of mtt-distillation's and tesla's distill.py loops, run by generate.py): the same
// start/target parameters, images, minibatches and DSA draws. MTT's gradient is exact (unrolled and
// adjoint both equal it); TESLA's is its own, Hessian-free one, and differs from MTT's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as E from '../../src/engine/index.js';
import { DSA, type Group } from '../../src/augment/index.js';
import {
  adjointGradients,
  teacherLabels,
  teslaGradients,
  unrolledGradients,
  type StudentStep,
  type TrajectoryProblem,
} from '../../src/distill/methods/mtt.js';
import { createNetwork, paramLayout } from '../../src/models/index.js';
import { assertAllClose, referenceFixture } from '../helpers.js';

function problemFrom(name: string, method: 'mtt' | 'tesla'): { problem: TrajectoryProblem; wrt: E.Tensor[] } {
  const fx = referenceFixture(name);
  const classes = Number(fx.meta.classes);
  const net = createNetwork(fx.meta.model, [1, 28, 28], classes);
  const start = fx.get('start');
  const init = net.init(new E.Generator(0));
  const layout = paramLayout({
    params: new Map([...init.params].map(([k, t]) => [k, t.to(start.dtype)])),
    buffers: new Map(),
  });
  const order = fx.meta.groups.split(',') as Group[];
  const dsa = fx.has(`${method}.step0.group`) ? new DSA({ strategy: order.join('_') }) : null;
  const steps: StudentStep[] = Array.from({ length: Number(fx.meta.steps) }, (_, s) => {
    const key = `${method}.step${s}`;
    const indices = fx.get(`${key}.indices`);
    if (!dsa) return { indices, draws: null };
    const group = order[fx.get(`${key}.group`).item()];
    return { indices, draws: (fx.get(`${key}.u`).toList() as number[][]).map((u) => ({ group, u })) };
  });
  const images = fx.get('images').clone().requiresGrad_();
  const lr = fx.get('lr').clone().requiresGrad_();
  const problem = {
    net,
    layout,
    start,
    target: fx.get('target'),
    images,
    labels: fx.get('labels'),
    lr,
    steps,
    dsa,
  };
  return { problem, wrt: [images, lr] };
}

for (const [name, tol] of [
  ['trajectory-f64', 1e-9],
  ['trajectory-dsa', 2e-3],
] as const) {
  const what = name === 'trajectory-f64' ? 'float64' : 'float32 with DSA';
  test(`MTT (unrolled and adjoint) equals the reference's loss and image/lr gradients (${what})`, () => {
    const fx = referenceFixture(name);
    const { problem, wrt } = problemFrom(name, 'mtt');
    for (const [kind, fn] of [
      ['unrolled', unrolledGradients],
      ['adjoint', adjointGradients],
    ] as const) {
      const { loss, grads } = fn(problem, wrt);
      assertAllClose(E.tensor(loss, { dtype: 'float64' }), fx.get('mtt.loss'), tol, `${kind} loss`);
      assertAllClose(grads[0], fx.get('mtt.grad.images'), tol, `${kind} image gradient`);
      assertAllClose(grads[1], fx.get('mtt.grad.lr'), tol, `${kind} lr gradient`);
    }
  });

  test(`TESLA equals its reference's loss and image/lr gradients, which differ from MTT's (${what})`, () => {
    const fx = referenceFixture(name);
    const { problem, wrt } = problemFrom(name, 'tesla');
    const { loss, grads } = teslaGradients(problem, wrt);
    assertAllClose(E.tensor(loss, { dtype: 'float64' }), fx.get('tesla.loss'), tol, 'TESLA loss');
    assertAllClose(grads[0], fx.get('tesla.grad.images'), tol, 'TESLA image gradient');
    assertAllClose(grads[1], fx.get('tesla.grad.lr'), tol, 'TESLA lr gradient');
    // The two references differ by more than the tolerance: a TESLA that computed MTT's gradient fails here.
    const mtt = fx.get('mtt.grad.images').double();
    const diff = mtt.sub(fx.get('tesla.grad.images').double()).abs().max().item();
    assert.ok(diff > 20 * tol * mtt.abs().max().item(), `MTT and TESLA references differ (${diff})`);
  });
}

test("TESLA's teacher labels equal the reference's: the target parameters' softmax on the images, eval mode", () => {
  const fx = referenceFixture('trajectory-f64');
  const { problem } = problemFrom('trajectory-f64', 'tesla');
  const labels = teacherLabels(problem.net, problem.target, problem.layout, problem.images);
  assertAllClose(labels, fx.get('teacher.labels'), 1e-9, 'teacher labels');
});

test("the DSA fixture's student steps include the resampling groups (mtt-distillation's and tesla's DiffAugment)", () => {
  const fx = referenceFixture('trajectory-dsa');
  const order = fx.meta.groups.split(',');
  for (const method of ['mtt', 'tesla']) {
    const groups = Array.from(
      { length: Number(fx.meta.steps) },
      (_, s) => order[fx.get(`${method}.step${s}.group`).item()],
    );
    assert.ok(
      groups.includes('scale') && groups.includes('rotate'),
      `${method} groups drawn: ${groups.join(', ')}`,
    );
  }
});
