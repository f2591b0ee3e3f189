// NCFM: the matching loss and its gradient against NCFM's own match_loss / CFLossFunc
// (test/fixtures/reference/generate.py ncfm_fixture), the gradient through a network against finite
// differences in float64, the pool's interpolation between an expert's first and last epochs, the images'
// plateau schedule against torch's ReduceLROnPlateau (plateau_fixture), clear errors, and a stopped run
// resuming bit-identical.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import * as E from '../../src/engine/index.js';
import { resolveConfig } from '../../src/distill/config.js';
import { ExpertSet, trainExperts } from '../../src/distill/experts.js';
import { drawPool, ncfmMatchLoss, type NCFMConfig } from '../../src/distill/methods/ncfm.js';
import { GroupOptimizer, groupOptimizersSchema, optimizerSpecSchema } from '../../src/distill/optimizers.js';
import { newSession, runIterations } from '../../src/distill/session.js';
import { SyntheticSet } from '../../src/distill/synthetic.js';
import { loadDataset } from '../../src/data/registry.js';
import { cfDiscrepancy } from '../../src/kernels/index.js';
import { createNetwork, flattenParams } from '../../src/models/index.js';
import { pixelParameterization } from '../../src/param/index.js';
import { assertAllClose, referenceFixture } from '../helpers.js';
import { TINY_EXPERTS, tempDir, writeSquaresFile } from '../fixtures.js';
import { assertResumesBitIdentical } from '../resume.js';

const LOSS = { alpha: 0.5, beta: 0.5, scale: 300, normalize: true };

test("NCFM: the loss and feature gradient equal NCFM's match_loss (normalised features, 300 x CFLossFunc)", () => {
  const fx = referenceFixture('ncfm');
  const cases: Record<string, Pick<NCFMConfig, 'alpha' | 'beta' | 'scale' | 'normalize'>> = {
    default: LOSS,
    weighted: { ...LOSS, alpha: 0.3, beta: 0.8 },
  };
  for (const [key, c] of Object.entries(cases)) {
    const syn = fx.get('syn').clone().requiresGrad_();
    const loss = ncfmMatchLoss(fx.get('real'), syn, fx.get('freqs'), c);
    assertAllClose(loss, fx.get(`${key}.loss`), 1e-10, `${key} loss`);
    assertAllClose(E.grad(loss, [syn])[0], fx.get(`${key}.grad`), 1e-9, `${key} gradient`);
  }
});

test('CF discrepancy: near zero for the same sample, positive otherwise; clear errors on bad shapes', () => {
  const gen = new E.Generator(2);
  const f64 = { dtype: 'float64' as const, generator: gen };
  const x = E.randn([5, 3], f64);
  const t = E.randn([16, 3], f64);
  const w = { alpha: 0.5, beta: 0.5 };
  // The phase term is clamped at 1e-12, so identical samples give sqrt(0.5e-12) per frequency.
  assert.ok(cfDiscrepancy(x, x, t, w).item() < 1e-6);
  assert.ok(cfDiscrepancy(x, E.randn([4, 3], f64).add(1), t, w).item() > 0.05);
  assert.throws(
    () => cfDiscrepancy(x, E.randn([4, 2], f64), t, w),
    /frequencies of dimension 3 for samples of dimension 3 and 2/,
  );
  assert.throws(() => cfDiscrepancy(x.reshape(15), x, t, w), /must be 2-d/);
});

test('NCFM: the gradient through the network into the images equals finite differences in float64', () => {
  const net = createNetwork('ConvNetW4D2', [1, 8, 8], 2);
  const gen = new E.Generator(3);
  const state = net.init(gen);
  for (const [k, t] of state.params) state.params.set(k, t.double());
  const f64 = { dtype: 'float64' as const, generator: gen };
  const real = E.noGrad(() => net.embed(state, E.randn([6, 1, 8, 8], f64), { train: true }));
  const freqs = E.randn([12, real.size(1)], f64);
  const syn = E.randn([3, 1, 8, 8], f64);
  const r = E.gradcheck(
    (x) => ncfmMatchLoss(real, net.embed(state, x, { train: true }), freqs, LOSS),
    [syn],
    {
      atol: 1e-6,
      rtol: 1e-5,
    },
  );
  assert.ok(r.ok, JSON.stringify(r));
});

test("The images' plateau schedule follows torch's ReduceLROnPlateau (mode min, factor 0.5, patience 3)", () => {
  const fx = referenceFixture('plateau');
  const images = E.zeros([2, 1, 4, 4]);
  const set = new SyntheticSet(pixelParameterization(images, 1), E.tensor([0, 1], { dtype: 'int64' }), 1, 2);
  const spec = optimizerSpecSchema.parse({
    kind: 'adamw',
    lr: 1e-3,
    weightDecay: 5e-4,
    schedule: { kind: 'plateau', factor: 0.5, patience: 3 },
  });
  const opt = new GroupOptimizer(set, spec, groupOptimizersSchema.parse({}), 1);
  const expected = fx.get('lrs').toNumbers();
  const seen: number[] = [];
  fx.get('losses')
    .toNumbers()
    .forEach((loss) => {
      opt.observe(loss);
      opt.step([E.onesLike(images)]);
      seen.push(opt.stateDict().meta.images?.lr as number);
    });
  for (let i = 0; i < expected.length; i++)
    assert.ok(Math.abs(seen[i] - expected[i]) < 1e-15, `step ${i}: lr ${seen[i]} vs torch ${expected[i]}`);
  assert.ok(expected.at(-1)! < 1e-3 / 4, 'the fixture reduces the lr more than once');
  // The schedule's state is saved and restored with the optimizer.
  const again = new GroupOptimizer(set, spec, groupOptimizersSchema.parse({}), 1);
  again.loadStateDict(opt.stateDict());
  assert.deepEqual(again.stateDict().meta.images?.plateau, opt.stateDict().meta.images?.plateau);
  for (const kind of ['adam', 'sgd'] as const)
    assert.throws(
      () => new GroupOptimizer(set, { ...spec, kind }, groupOptimizersSchema.parse({}), 1),
      /weightDecay is an AdamW setting/,
    );
  // A non-finite loss is never the best (torch starts from +inf): the next finite loss is.
  const fresh = new GroupOptimizer(set, spec, groupOptimizersSchema.parse({}), 1);
  fresh.observe(NaN);
  fresh.observe(3);
  assert.deepEqual(fresh.stateDict().meta.images?.plateau, { best: 3, bad: 0, scale: 1 });
});

const data = writeSquaresFile({ classes: 3, perClass: 20 });
const ds = loadDataset(data);
const expertsDir = join(tempDir('experts-ncfm'), 'e');
trainExperts(ds, expertsDir, TINY_EXPERTS);

function config(method: Record<string, unknown> = {}, top: Record<string, unknown> = {}) {
  return resolveConfig({
    dataset: data,
    method: 'ncfm',
    ipc: 1,
    model: 'ConvNetW8',
    iterations: 4,
    checkpointEvery: 2,
    evalRuns: 0,
    ...top,
    methodConfig: { experts: expertsDir, batchReal: 6, numFreqs: 32, ...method },
  });
}

test("NCFM's pool: the matching network lies between an expert's first and last epochs, the calibration network is the last", () => {
  const s = newSession(ds, config());
  const set = new ExpertSet(expertsDir, ds, 'ConvNetW8');
  for (const [l, epoch] of [
    [0, TINY_EXPERTS.epochs],
    [1, 0],
  ] as const) {
    const draw = drawPool(s.ctx, { ...s.config.methodConfig, interpolation: [l, l] } as NCFMConfig);
    const fromExpert = [0, 1].map((e) => set.load(e, epoch));
    const m = flattenParams(draw.matching);
    assert.ok(
      fromExpert.some((e) => e.sub(m).abs().max().item() < 1e-6),
      `l = ${l}: the matching network is epoch ${epoch} of an expert`,
    );
    const trained = flattenParams(draw.trained);
    assert.ok(
      [0, 1].some((e) => set.load(e, TINY_EXPERTS.epochs).sub(trained).abs().max().item() === 0),
      'the calibration network is the last epoch',
    );
  }
});

test('NCFM: a run moves the multi-formation images and logs finite losses', async () => {
  const s = newSession(ds, config());
  assert.equal(s.synthetic.decodedPerClass, 4, 'IDC multi-formation (factor 2) by default');
  const before = s.synthetic.groups.images[0].clone();
  const losses: number[] = [];
  await runIterations(s, 0, 3, { after: ({ loss }) => void losses.push(loss) });
  assert.ok(s.synthetic.groups.images[0].sub(before).abs().max().item() > 1e-4, 'the images moved');
  assert.ok(losses.length === 3 && losses.every((l) => Number.isFinite(l) && l > 0), `losses ${losses}`);
});

test('NCFM: every iteration starts by clamping the stored images to the pixel range [0, 1]', async () => {
  // lr 0: the updates leave the images where the clamp put them.
  const s = newSession(ds, config({}, { optimizer: { kind: 'adamw', lr: 0, weightDecay: 0 } }));
  const images = s.synthetic.groups.images[0];
  E.noGrad(() => images.fill_(10));
  await runIterations(s, 0, 1);
  const spec = ds.preprocessing.toSpec();
  const hi = (1 - spec.mean[0]) / spec.std[0];
  assert.ok(Math.abs(images.max().item() - hi) < 1e-5 && Math.abs(images.min().item() - hi) < 1e-5);
});

test('NCFM: batch-norm models, a trained epoch beyond the experts and missing experts are clear errors', () => {
  assert.throws(() => newSession(ds, config({}, { model: 'ConvNetW8BN' })), /batch-norm/);
  assert.throws(
    () => newSession(ds, config({ trainedEpoch: 9 })),
    /trainedEpoch 9 is beyond the experts' 3 epochs/,
  );
  assert.throws(
    () => newSession(ds, config({ experts: join(tempDir('no-experts'), 'none') })),
    /no expert trajectories/,
  );
});

test('NCFM: a stopped run resumes bit-identical (images, AdamW moments, plateau state, stream)', async () => {
  const { metadata } = await assertResumesBitIdentical('ncfm', () => config(), 2);
  const plateau = (JSON.parse(metadata.optimizer) as { images: { plateau?: unknown } }).images.plateau;
  assert.ok(plateau, 'the plateau state is checkpointed');
});
