// DM's and DC/DSA's matching losses and image gradients against the reference code on fixed
// weights, images and augmentation parameters: main_DM.py's loss (ConvNet branch) and main.py's
// gradient matching with utils.match_loss for each distance. Fixtures: test/fixtures/reference/generate.py.
import { test } from 'node:test';
import * as E from '../../src/engine/index.js';
import { DSA, type Group, type SegmentParams } from '../../src/augment/index.js';
import { classMatchingLoss } from '../../src/distill/methods/dc.js';
import { distributionMatchingLoss } from '../../src/distill/methods/dm.js';
import { DISTANCES } from '../../src/distill/matching.js';
import { createNetwork } from '../../src/models/index.js';
import { assertAllClose, referenceFixture, withWeights } from '../helpers.js';

function siameseDraws(fx: ReturnType<typeof referenceFixture>, key: string): SegmentParams[] {
  const order = fx.meta.groups.split(',') as Group[];
  const u = fx.get(`${key}.u`).toList() as number[][];
  return fx
    .get(`${key}.group`)
    .toNumbers()
    .map((g, c) => ({ group: order[g], u: u[c] }));
}

const STRATEGY = 'color_crop_cutout_flip_scale_rotate';

test("DM: the loss and image gradient equal main_DM.py's (without and with Siamese DSA)", () => {
  const fx = referenceFixture('dm');
  const classes = Number(fx.meta.classes);
  const net = createNetwork(fx.meta.model, [1, 28, 28], classes);
  const state = withWeights(net, fx.get);
  const real = fx.get('real');
  for (const key of ['plain', 'dsa']) {
    const syn = fx.get('syn').clone().requiresGrad_();
    const loss = distributionMatchingLoss({
      net,
      state,
      classes,
      real,
      perClass: real.size(0) / classes,
      syn,
      ipc: syn.size(0) / classes,
      draws: key === 'dsa' ? siameseDraws(fx, 'dsa') : null,
      dsa: key === 'dsa' ? new DSA({ strategy: STRATEGY }) : null,
      realDtype: 'float32',
      realChunk: 640,
    });
    assertAllClose(loss, fx.get(`${key}.loss`), 1e-5, `DM ${key} loss`);
    assertAllClose(E.grad(loss, [syn])[0], fx.get(`${key}.grad`), 1e-4, `DM ${key} image gradient`);
  }
});

test('DC/DSA: the matching loss and image gradient equal main.py + match_loss (ours, mse, cos; DSA with ours)', () => {
  const fx = referenceFixture('dc');
  const classes = Number(fx.meta.classes);
  const net = createNetwork(fx.meta.model, [1, 28, 28], classes);
  const state = withWeights(net, fx.get);
  [...state.params.values()].forEach((p) => p.requiresGrad_());
  const real = fx.get('real');
  const nReal = real.size(0) / classes;
  for (const key of [...DISTANCES, 'ours.dsa']) {
    const distance = key.split('.')[0] as (typeof DISTANCES)[number];
    const draws = key.endsWith('.dsa') ? siameseDraws(fx, key) : null;
    const dsa = draws ? new DSA({ strategy: STRATEGY }) : null;
    const syn = fx.get('syn').clone().requiresGrad_();
    const ipc = syn.size(0) / classes;
    let total: E.Tensor | null = null;
    for (let c = 0; c < classes; c++) {
      const label = (n: number) => E.full([n], c, { dtype: 'int64' });
      const loss = classMatchingLoss(
        net,
        state,
        { images: real.narrow(0, c * nReal, nReal), labels: label(nReal) },
        { images: syn.narrow(0, c * ipc, ipc), labels: label(ipc) },
        { distance, train: true, augment: draws && dsa ? { dsa, draw: draws[c] } : undefined },
      );
      total = total ? total.add(loss) : loss;
    }
    assertAllClose(total as E.Tensor, fx.get(`${key}.loss`), 1e-5, `DC ${key} loss`);
    assertAllClose(
      E.grad(total as E.Tensor, [syn])[0],
      fx.get(`${key}.grad`),
      1e-4,
      `DC ${key} image gradient`,
    );
  }
});
