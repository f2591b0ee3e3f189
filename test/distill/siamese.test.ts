// The Siamese property where it matters, in the methods: DM and DSA apply one augmentation draw per
// class to the real and the synthetic side. With a synthetic set equal to the real batch (every
// image of the class on both sides), the matching loss of a step is then zero; a method that drew
// the two sides independently would leave a clearly positive loss (the control below).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as E from '../../src/engine/index.js';
import { DSA, defaultStrategy } from '../../src/augment/index.js';
import { loadDataset } from '../../src/data/registry.js';
import { contextWithOptimizer } from '../../src/distill/method.js';
import { classMatchingLoss, dsa } from '../../src/distill/methods/dc.js';
import { distributionMatchingLoss, dm } from '../../src/distill/methods/dm.js';
import { SyntheticSet } from '../../src/distill/synthetic.js';
import { createNetwork } from '../../src/models/index.js';
import { writeSquaresFile } from '../fixtures.js';

const perClass = 4;
const ds = loadDataset(writeSquaresFile({ classes: 3, perClass }));

function context(seed: number) {
  const gen = new E.Generator(seed);
  // All of each class's training images, in a permuted order: the real batch holds the same images.
  const synthetic = SyntheticSet.create(ds, perClass, 'real', gen);
  const base = { dataset: ds, synthetic, gen, model: 'ConvNetW8' };
  return contextWithOptimizer(base, new E.SGD(synthetic.learnable, { lr: 0 }));
}

test('DM: the real and synthetic side of a class share one draw (zero loss when they hold the same images)', () => {
  for (let seed = 0; seed < 4; seed++) {
    const config = dm.schema.parse({ batchReal: perClass, realDtype: 'float32' });
    const { loss } = dm.step(context(seed), config, 0);
    assert.ok(loss < 1e-9, `seed ${seed}: loss ${loss}`);
  }
  // Control: the same images with independent draws per side are far from zero.
  const net = createNetwork('ConvNetW8', ds.imageShape, 3);
  const gen = new E.Generator(1);
  const state = net.init(gen);
  const aug = new DSA({ strategy: defaultStrategy(ds.name) });
  const { images } = ds.gather(ds.sampleIndices(perClass, gen));
  const other = aug.sample(3, gen);
  const loss = E.tidy(() => {
    const realAug = aug.apply(images, aug.sample(3, gen), [perClass, perClass, perClass]);
    return distributionMatchingLoss({
      net,
      state,
      classes: 3,
      real: realAug,
      perClass,
      syn: images,
      ipc: perClass,
      draws: other,
      dsa: aug,
      realDtype: 'float32',
      realChunk: 640,
    }).item();
  });
  assert.ok(loss > 1e-4, `independent draws: loss ${loss}`);
});

test('DSA (gradient matching): both sides of a class share one draw (zero mse distance on equal images)', () => {
  for (let seed = 0; seed < 4; seed++) {
    const config = dsa.schema.parse({
      batchReal: perClass,
      outerLoop: 1,
      distance: 'mse',
      realDtype: 'float32',
    });
    const { loss } = dsa.step(context(seed), config, 0);
    assert.ok(loss < 1e-9, `seed ${seed}: loss ${loss}`);
  }
  // Control: the same images, augmented on the real side only, are far from zero.
  const net = createNetwork('ConvNetW8', ds.imageShape, 3);
  const gen = new E.Generator(2);
  const state = net.init(gen);
  [...state.params.values()].forEach((p) => p.requiresGrad_());
  const aug = new DSA({ strategy: defaultStrategy(ds.name) });
  const batch = ds.gather(ds.classIndices(0).slice(0, perClass));
  const distance = E.tidy(() =>
    classMatchingLoss(
      net,
      state,
      { images: aug.apply(batch.images, aug.sample(1, gen), [perClass]), labels: batch.labels },
      batch,
      { distance: 'mse', train: true },
    ).item(),
  );
  assert.ok(distance > 1e-6, `one side augmented: distance ${distance}`);
});
