// IDM: one class's loss and its gradient to the stored (multi-formation) images against the official
// code (uitrbn/IDM: number_sign_augment, dc_networks ConvNet.embed_channel_avg, the class-aware CE), the
// gradient against finite differences in float64, the network queue (FIFO, pushes, accuracy meters and
// their resets), a stopped run resuming bit-identical.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as E from '../../src/engine/index.js';
import { resolveConfig } from '../../src/distill/config.js';
import { idmClassLoss } from '../../src/distill/methods/idm.js';
import { newSession, runIterations } from '../../src/distill/session.js';
import { loadDataset } from '../../src/data/registry.js';
import { multiFormationDecode } from '../../src/param/multiformation.js';
import { createNetwork } from '../../src/models/index.js';
import { assertAllClose, referenceFixture, withWeights } from '../helpers.js';
import { writeSquaresFile } from '../fixtures.js';
import { assertResumesBitIdentical } from '../resume.js';

test("IDM: a class's loss and the stored images' gradient equal the official code's", () => {
  const fx = referenceFixture('idm');
  const net = createNetwork(fx.meta.model, [1, 28, 28], Number(fx.meta.classes));
  const params = withWeights(net, fx.get);
  const stored = fx.get('stored').clone().requiresGrad_();
  const problem = {
    net,
    params,
    real: fx.get('real'),
    syn: multiFormationDecode(stored, 2),
    label: Number(fx.meta.label),
    weight: Number(fx.meta.weight),
    dsa: null,
    draw: null,
  };
  assertAllClose(idmClassLoss({ ...problem, weight: 0 }), fx.get('matchLoss'), 1e-5, 'matching term');
  const loss = idmClassLoss(problem);
  assertAllClose(loss, fx.get('loss'), 1e-5, 'loss');
  assertAllClose(E.grad(loss, [stored])[0], fx.get('grad'), 1e-4, 'gradient to the stored images');
});

test('IDM: the gradient through the partition equals finite differences in float64', () => {
  const net = createNetwork('ConvNetW4D2', [1, 8, 8], 2);
  const gen = new E.Generator(3);
  const params = net.init(gen);
  for (const [k, t] of params.params) params.params.set(k, t.double());
  const f64 = { dtype: 'float64' as const, generator: gen };
  const real = E.randn([3, 1, 8, 8], f64);
  const r = E.gradcheck(
    (x) =>
      idmClassLoss({
        net,
        params,
        real,
        syn: multiFormationDecode(x, 2),
        label: 1,
        weight: 3,
        dsa: null,
        draw: null,
      }),
    [E.randn([2, 1, 8, 8], f64)],
    { atol: 1e-6, rtol: 1e-4 },
  );
  assert.ok(r.ok, JSON.stringify(r));
});

const data = writeSquaresFile({ classes: 3, perClass: 20 });
function config(method: Record<string, unknown> = {}) {
  return resolveConfig({
    dataset: data,
    method: 'idm',
    ipc: 1,
    model: 'ConvNetW8',
    iterations: 4,
    checkpointEvery: 2,
    evalRuns: 0,
    methodConfig: {
      batchReal: 4,
      queueSize: 4,
      pushEvery: 1,
      trainSteps: 2,
      trainBatch: 8,
      accuracyReset: 3,
      ...method,
    },
  });
}

test('IDM: the queue starts with initialNets, grows by one per pushEvery, drops the oldest; meters reset', async () => {
  const ds = loadDataset(data);
  const s = newSession(ds, config());
  assert.equal(s.synthetic.decodedPerClass, 4, 'partition and expand: 4 images per stored image');
  const ids = () => (s.ctx.state.get('idm.queue') as E.Tensor).toNumbers();
  assert.deepEqual(ids(), [0, 1, 2]);
  await runIterations(s, 0, 2); // pushes at iterations 0 and 1; the queue holds 4
  assert.deepEqual(ids(), [1, 2, 3, 4]);
  assert.ok(!s.ctx.state.has('idm.net.0'), 'the oldest network and its state are gone');
  const seen = ids().map((id) => (s.ctx.state.get(`idm.net.${id}.acc`) as E.Tensor).toNumbers()[1]);
  assert.ok(
    seen.some((n) => n > 0),
    'trained networks count their real images',
  );
  // Iteration 3 (0-based) resets every meter, then trains two networks: 2 x 2 steps of 8 images.
  await runIterations(s, 2, 4);
  const after = ids().map((id) => (s.ctx.state.get(`idm.net.${id}.acc`) as E.Tensor).toNumbers()[1]);
  assert.equal(
    after.reduce((a, b) => a + b, 0),
    2 * 2 * 8,
    'only the last iteration counts after the reset',
  );
});

test('IDM: a stopped run resumes bit-identical (queue, momentum, meters)', async () => {
  await assertResumesBitIdentical('idm', () => config(), 2);
});
