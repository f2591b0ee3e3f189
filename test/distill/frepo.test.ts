// FRePo: the loss (KRR on features + the label-margin term) and its image/label gradients against
// finite differences in float64; the model pool (staggered ages, online steps, replacement past the
// online budget) and a stopped run resuming bit-identical with LAMB and its cosine schedule.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as E from '../../src/engine/index.js';
import { resolveConfig } from '../../src/distill/config.js';
import { frepoFeatures, frepoLoss } from '../../src/distill/methods/frepo.js';
import { scheduledLr } from '../../src/distill/optimizers.js';
import { centredOneHot } from '../../src/kernels/index.js';
import { writeSquaresFile } from '../fixtures.js';
import { assertResumesBitIdentical } from '../resume.js';
import { assertClose } from '../helpers.js';

test('FRePo loss: KRR error plus the label margin term, gradients in images and labels by finite differences', () => {
  const gen = new E.Generator(9);
  const r = (...s: number[]) => E.randn(s, { dtype: 'float64', generator: gen });
  // A depth-2 model on 2-channel 4x4 images: conv 2->3, conv 3->6, Dense 6 -> 3.
  const params = [r(3, 2, 3, 3), r(3), r(6, 3, 3, 3), r(6), r(3, 6), r(3)];
  const xt = r(5, 2, 4, 4);
  // Learned labels (the margin term on): the fixed-label loss is the same without that term.
  const yt = centredOneHot(E.tensor([0, 1, 2, 0, 1], { dtype: 'int64' }), 3, 'float64');
  const ft = frepoFeatures(params, xt, 2);
  const fn = (x: E.Tensor, y: E.Tensor) => frepoLoss(frepoFeatures(params, x, 2), y, ft, yt, 1e-3, true);
  const ys0 = centredOneHot(E.tensor([0, 1, 2], { dtype: 'int64' }), 3, 'float64').add(r(3, 3).mul(0.05));
  const res = E.gradcheck(fn, [r(3, 2, 4, 4), ys0], { atol: 1e-7, rtol: 1e-4 });
  assert.ok(res.ok, JSON.stringify(res));
  // The margin term: -min(top1 - top2, 1/C), averaged over the synthetic rows.
  const ys = E.tensor(
    [
      [0.9, 0.1, 0],
      [0.5, 0.45, 0],
      [0, 0, 1],
    ],
    { dtype: 'float64' },
  );
  const feats = E.eye(3, 3, { dtype: 'float64' });
  const withMargin = frepoLoss(feats, ys, feats, ys, 0, true).item();
  const without = frepoLoss(feats, ys, feats, ys, 0, false).item();
  assertClose(withMargin - without, -(1 / 3 + 0.05 + 1 / 3) / 3, 1e-9, 'margin term');
});

test('cosine schedule: lr decays from lr to alpha x lr over the run (optax.cosine_decay_schedule)', () => {
  const spec = {
    kind: 'lamb' as const,
    lr: 1,
    momentum: 0.5,
    schedule: { kind: 'cosine' as const, alpha: 0.1 },
  };
  assertClose(
    [0, 50, 100, 150].map((s) => scheduledLr(spec, s, 100)),
    [1, 0.55, 0.1, 0.1],
    1e-12,
  );
});

test('FRePo: the pool ages, trains and replaces its models; a stopped run resumes bit-identical', async () => {
  const data = writeSquaresFile({ classes: 3, perClass: 20 });
  const config = () =>
    resolveConfig({
      dataset: data,
      method: 'frepo',
      ipc: 2,
      iterations: 6,
      checkpointEvery: 3,
      evalRuns: 0,
      methodConfig: { poolSize: 2, maxOnlineUpdates: 2, width: 4, depth: 2, batchReal: 20 },
    });
  const a = await assertResumesBitIdentical('frepo', config, 3);
  const [s0, s1, current] = a.tensors['method.pool.meta'].toNumbers();
  // 6 iterations over 2 models starting at ages 0 and 1, each replaced after 3 online steps (age > 2).
  assert.ok(s0 <= 3 && s1 <= 3 && (current === 0 || current === 1), `pool meta ${[s0, s1, current]}`);
  assert.ok('set.labelTargets' in a.tensors && 'optimizer.images.expAvg.0' in a.tensors);
  assert.equal(JSON.parse(a.metadata.optimizer).images.kind, 'LAMB');
});
