// DATM: the start-epoch window against DATM.py's rule (its CIFAR-10 IPC 10 schedule), the initial images
// (classified correctly by the first expert) and labels (mean logits of the experts that classify each
// correctly, recomputed here by hand), the loss threshold skipping every update, a stopped run resuming
// bit-identical. Its loss and gradient are MTT's (test/reference/trajectory.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as E from '../../src/engine/index.js';
import { resolveConfig } from '../../src/distill/config.js';
import { ExpertSet, trainExperts, type ExpertTraining } from '../../src/distill/experts.js';
import { startEpochBound } from '../../src/distill/methods/mtt.js';
import { newSession, runIterations } from '../../src/distill/session.js';
import { loadDataset } from '../../src/data/registry.js';
import { createNetwork, unflattenParams } from '../../src/models/index.js';
import { join } from 'node:path';
import { TINY_EXPERTS, tempDir, trajectoryRunInput, writeSquaresFile } from '../fixtures.js';
import { assertResumesBitIdentical } from '../resume.js';

test("DATM's start-epoch window: DATM.py's Upper_Bound (CIFAR-10 IPC 10: 10 -> 20 over 1,000 iterations)", () => {
  const c = { maxStartEpoch: 20, startWindow: { from: 10, iterations: 1000 } };
  // Upper_Bound = min(max, cur + int((max - cur) * it / E)), exclusive.
  for (const [it, bound] of [
    [0, 10],
    [99, 10],
    [100, 11],
    [550, 15],
    [999, 19],
    [1000, 20],
    [5000, 20],
  ])
    assert.equal(startEpochBound(c, it), bound, `iteration ${it}`);
  assert.equal(startEpochBound({ maxStartEpoch: 4, startWindow: null }, 123), 4, 'no window: MTT');
});

const data = writeSquaresFile({ classes: 3, perClass: 20 });
const ds = loadDataset(data);
// Trained longer and harder than TINY_EXPERTS so that they classify enough images correctly.
const training: ExpertTraining = {
  ...TINY_EXPERTS,
  epochs: 4,
  lr: 0.05,
  augment: false,
  gsam: { rho: 0.01, alpha: 0.3, adaptive: true },
};
const expertsDir = join(tempDir('experts-datm'), 'e');
trainExperts(ds, expertsDir, training);

function config(extra: Record<string, unknown> = {}, method: Record<string, unknown> = {}) {
  return resolveConfig(
    trajectoryRunInput(data, 'datm', expertsDir, {
      top: extra,
      methodConfig: {
        maxStartEpoch: 3,
        startWindow: { from: 2, iterations: 4 },
        lossThreshold: null,
        ...method,
      },
    }),
  );
}

test('DATM init: images the first expert classifies correctly, labels the mean logits of the experts that do', () => {
  const s = newSession(ds, config());
  const { images, labels } = s.synthetic.decode();
  assert.equal(s.synthetic.labelForm, 'logits', 'learned soft labels by default');
  const experts = new ExpertSet(expertsDir, ds, 'ConvNetW8');
  const net = createNetwork('ConvNetW8', ds.imageShape, 3);
  const logitsOf = (e: number) =>
    E.noGrad(() =>
      net.forward(
        unflattenParams(experts.load(e, experts.epochs), experts.manifest.layout),
        images.detach(),
        {
          train: false,
        },
      ),
    );
  const classes = E.tensor([0, 0, 1, 1, 2, 2], { dtype: 'int64' });
  assert.deepEqual(logitsOf(experts.complete[0]).argmax(1).toNumbers(), classes.toNumbers());
  // Every stored image is a real training image.
  const train = ds.train.images.flatten(1);
  for (let i = 0; i < 6; i++) {
    const d = train
      .sub(images.narrow(0, i, 1).flatten(1))
      .abs()
      .sum(1)
      .min()
      .item();
    assert.equal(d, 0, `image ${i} is a training image`);
  }
  // Mean logits over the experts that classify each image correctly, by hand.
  const all = experts.complete.map(logitsOf);
  const expected = [0, 1, 2, 3, 4, 5].map((i) => {
    const right = all.filter((l) => l.narrow(0, i, 1).argmax(1).item() === classes.toNumbers()[i]);
    return E.cat(
      right.map((l) => l.narrow(0, i, 1)),
      0,
    ).mean(0);
  });
  const probabilities = E.nn.softmax(E.stack(expected, 0), 1);
  assert.ok(
    labels.detach().sub(probabilities).abs().max().item() < 1e-5,
    'softmax of the mean correct logits',
  );
});

test('DATM: a loss above the threshold updates nothing; below it, the images move', async () => {
  const run = async (threshold: number | null) => {
    const s = newSession(ds, config({}, { lossThreshold: threshold }));
    const before = s.synthetic.decode().images.detach().clone();
    const labels = s.synthetic.labels.detach().clone();
    await runIterations(s, 0, 2);
    return {
      images: s.synthetic.decode().images.sub(before).abs().max().item(),
      labels: s.synthetic.labels.sub(labels).abs().max().item(),
    };
  };
  assert.deepEqual(await run(1e-9), { images: 0, labels: 0 });
  const moved = await run(null);
  assert.ok(moved.images > 0 && moved.labels > 0, JSON.stringify(moved));
});

test('DATM: a stopped run resumes bit-identical (window, learned labels); a window below minStartEpoch is refused', async () => {
  await assertResumesBitIdentical('datm', () => config(), 2);
  assert.throws(
    () => newSession(ds, config({}, { minStartEpoch: 2 })),
    /minStartEpoch \(2\) must be below the start epochs' upper bound \(startWindow.from 2\)/,
  );
});
