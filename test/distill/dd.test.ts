// DD: the meta-gradient through 3 unrolled SGD steps with momentum (images and per-step lrs) against
// finite differences in float64; truncation cuts the early steps out of the backward pass; a stopped
// run resumes bit-identical, the per-step lrs and their Adam state included.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as E from '../../src/engine/index.js';
import { resolveConfig } from '../../src/distill/config.js';
import { unrolledLoss } from '../../src/distill/methods/dd.js';
import { createNetwork } from '../../src/models/index.js';
import { writeSquaresFile } from '../fixtures.js';
import { assertResumesBitIdentical } from '../resume.js';

function problem(momentum: number, truncate: number) {
  const gen = new E.Generator(10);
  const net = createNetwork('ConvNetW3D1', [1, 4, 4], 3);
  const s = net.init(gen);
  const state = {
    params: new Map([...s.params].map(([k, t]) => [k, t.double()])),
    buffers: s.buffers,
  };
  const real = {
    images: E.randn([6, 1, 4, 4], { dtype: 'float64', generator: gen }),
    labels: E.tensor([0, 1, 2, 0, 1, 2], { dtype: 'int64' }),
  };
  const labels = E.tensor([0, 1, 2], { dtype: 'int64' });
  const steps = [E.tensor([0, 1, 2], { dtype: 'int64' })];
  const images = E.randn([3, 1, 4, 4], { dtype: 'float64', generator: gen });
  const lrs = E.tensor([0.3, 0.2, 0.4], { dtype: 'float64' });
  const loss = (x: E.Tensor, l: E.Tensor) =>
    unrolledLoss({ net, state, images: x, labels, steps, lrs: l, momentum, truncate, real });
  return { loss, images, lrs };
}

test('DD: the gradient through 3 unrolled steps with momentum 0.9 (images and per-step lrs) matches finite differences', () => {
  const { loss, images, lrs } = problem(0.9, 0);
  const r = E.gradcheck(loss, [images, lrs], { atol: 1e-7, rtol: 1e-4 });
  assert.ok(r.ok, JSON.stringify(r));
});

test('DD truncation: only the last k steps are differentiated', () => {
  const { loss, images, lrs } = problem(0.9, 1);
  const x = images.clone().requiresGrad_();
  const l = lrs.clone().requiresGrad_();
  const [, gl] = E.grad(loss(x, l), [x, l]);
  const g = gl.toNumbers();
  assert.equal(g[0], 0);
  assert.equal(g[1], 0);
  assert.notEqual(g[2], 0);
});

test('DD: a stopped run resumes bit-identical, per-step lrs and their Adam state included', async () => {
  const data = writeSquaresFile({ classes: 3, perClass: 20 });
  const config = () =>
    resolveConfig({
      dataset: data,
      method: 'dd',
      ipc: 2,
      model: 'ConvNetW4D1',
      iterations: 4,
      checkpointEvery: 2,
      evalRuns: 0,
      methodConfig: { epochs: 2, batchReal: 12, momentum: 0.9 },
    });
  const a = await assertResumesBitIdentical('dd', config, 2);
  // 2 distinct steps x 2 epochs = 4 learned lrs, moved from softplus^-1(0.02).
  const raw = a.tensors['method.rawLrs'].toNumbers();
  assert.equal(raw.length, 4);
  assert.ok(
    raw.some((v) => Math.abs(v - Math.log(Math.expm1(0.02))) > 1e-6),
    'lrs learned',
  );
});
