// DM's chunked synthetic pass (synChunk): embedding the decoded images without a graph, differentiating
// the loss with respect to the embeddings, then re-running each chunk with its graph gives the gradient
// of the one-pass loss: in float64 for DM's mean and M3D's MMD discrepancies under DSA, with chunk sizes
// that do not divide the set, and through a whole DM step on a LinBa set (its decoder pulled back).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as E from '../../src/engine/index.js';
import { DSA } from '../../src/augment/index.js';
import {
  chunkedMatching,
  dm,
  matchedEmbeddings,
  meanDiscrepancy,
  type Discrepancy,
  type DMProblem,
} from '../../src/distill/methods/dm.js';
import { SyntheticSet } from '../../src/distill/synthetic.js';
import { loadDataset } from '../../src/data/registry.js';
import { mmd2 } from '../../src/kernels/index.js';
import { castState, createNetwork } from '../../src/models/index.js';
import { assertAllClose } from '../helpers.js';
import { writeSquaresFile } from '../fixtures.js';

const gaussian: Discrepancy = (real, syn) =>
  mmd2(real, syn, { kernel: 'gaussian', bandwidth: 'median' }).sum();

function float64Problem(syn: E.Tensor, gen: E.Generator, withDsa: boolean): DMProblem {
  const classes = 3;
  const net = createNetwork('ConvNetW8', [1, 16, 16], classes);
  const dsa = new DSA({ strategy: 'color_crop_cutout_scale_rotate' });
  return {
    net,
    state: castState(net.init(gen), 'float64'),
    classes,
    real: E.rand([classes * 4, 1, 16, 16], { dtype: 'float64', generator: gen }),
    perClass: 4,
    syn,
    ipc: syn.size(0) / classes,
    draws: withDsa ? dsa.sample(classes, gen) : null,
    dsa: withDsa ? dsa : null,
    realDtype: 'float32',
    realChunk: 640,
  };
}

test('DM chunked synthetic pass: loss and image gradient equal the one-pass ones in float64 (mean and MMD, with and without DSA)', () => {
  for (const [name, discrepancy, withDsa] of [
    ['mean', meanDiscrepancy, true],
    ['gaussian MMD', gaussian, true],
    ['mean without DSA', meanDiscrepancy, false],
  ] as const) {
    const gen = new E.Generator(11);
    const syn = E.rand([3 * 5, 1, 16, 16], { dtype: 'float64', generator: gen }).requiresGrad_();
    const p = float64Problem(syn, gen, withDsa);
    const { real, syn: emb } = matchedEmbeddings(p);
    const oneLoss = discrepancy(real, emb);
    const oneGrad = E.grad(oneLoss, [syn])[0];
    for (const chunk of [1, 4, 7]) {
      const { value, synGrad } = chunkedMatching(p, discrepancy, chunk);
      assertAllClose(value, oneLoss, 1e-12, `${name}, chunk ${chunk}: loss`);
      assertAllClose(synGrad, oneGrad, 1e-10, `${name}, chunk ${chunk}: image gradient`);
    }
    assert.ok(oneGrad.abs().sum().item() > 0, `${name}: a gradient to compare`);
  }
  const bn = float64Problem(E.rand([6, 1, 16, 16], { dtype: 'float64' }), new E.Generator(1), false);
  bn.net = createNetwork('ConvNetBN', [1, 16, 16], 3);
  bn.state = castState(bn.net.init(new E.Generator(1)), 'float64');
  assert.throws(() => chunkedMatching(bn, meanDiscrepancy, 2), /batch-norm network cannot embed in chunks/);
});

test('DM step on a LinBa set: chunking the decoded images (synChunk) leaves the loss and decoder gradients unchanged', () => {
  const ds = loadDataset(writeSquaresFile({ classes: 3, perClass: 20 }));
  const set = SyntheticSet.create(ds, 2, 'real', new E.Generator(3), {
    parameterization: { kind: 'linba', bases: 4, downsample: 2 },
  });
  const decoded = set.decodedPerClass * ds.numClasses;
  assert.ok(decoded > 5, `${decoded} decoded images: synChunk 5 chunks them`);
  assert.equal(createNetwork('ConvNetW8', ds.imageShape, 3).hasBatchNorm, false, 'a network that chunks');
  const step = (synChunk: number) => {
    const gen = new E.Generator(8);
    let grads: E.Tensor[] = [];
    const update = (g: (E.Tensor | null)[]) => (grads = g.map((t) => E.keep((t as E.Tensor).clone())));
    const config = dm.schema.parse({ batchReal: 10, realDtype: 'float32', synChunk });
    const { loss } = dm.step(
      { dataset: ds, synthetic: set, gen, state: new Map(), model: 'ConvNetW8', update },
      config,
      0,
    );
    return { loss, grads };
  };
  const one = step(10_000);
  const chunked = step(5);
  assert.ok(Math.abs(one.loss - chunked.loss) <= 1e-5 * one.loss, `loss ${chunked.loss} vs ${one.loss}`);
  assert.equal(chunked.grads.length, set.learnable.length);
  one.grads.forEach((g, i) => assertAllClose(chunked.grads[i], g, 1e-4, `learnable ${i}`));
});
