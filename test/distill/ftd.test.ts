// FTD: GSAM experts (recorded in the manifest, different from SGD experts), the images' moving average
// (FTD's ModelEmaV2 rule by hand, swapped in and out exactly), a stopped FTD run resuming bit-identical
// with its average, the artifact holding the average and the raw images evaluated too, and FTD refusing
// experts trained without GSAM.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as E from '../../src/engine/index.js';
import { loadArtifact } from '../../src/artifact/artifact.js';
import { resolveConfig } from '../../src/distill/config.js';
import { Distiller } from '../../src/distill/distiller.js';
import { ExpertSet, readManifest, trainExperts, type ExpertTraining } from '../../src/distill/experts.js';
import { RunDir } from '../../src/distill/rundir.js';
import { SyntheticSet } from '../../src/distill/synthetic.js';
import { loadDataset } from '../../src/data/registry.js';
import { TINY_EXPERTS, tempDir, trajectoryRunInput, writeSquaresFile } from '../fixtures.js';
import { assertResumesBitIdentical } from '../resume.js';

const data = writeSquaresFile({ classes: 3, perClass: 20 });
const training: ExpertTraining = { ...TINY_EXPERTS };
const flatDir = join(tempDir('experts-gsam'), 'e');
const sgdDir = join(tempDir('experts-sgd'), 'e');
const ds = loadDataset(data);
trainExperts(ds, flatDir, { ...training, gsam: { rho: 0.05, alpha: 0.4, adaptive: true } });
trainExperts(ds, sgdDir, training);

test('GSAM experts: the manifest records GSAM; the trajectories differ from SGD experts of the same seed', () => {
  assert.deepEqual(readManifest(flatDir).training.gsam, { rho: 0.05, alpha: 0.4, adaptive: true });
  assert.equal(readManifest(sgdDir).training.gsam, undefined, 'SGD manifests stay as before');
  const flat = new ExpertSet(flatDir, ds, 'ConvNetW8');
  const sgd = new ExpertSet(sgdDir, ds, 'ConvNetW8');
  assert.equal(flat.load(0, 0).sub(sgd.load(0, 0)).abs().max().item(), 0, 'same initialisation');
  assert.ok(flat.load(0, 3).sub(sgd.load(0, 3)).abs().max().item() > 1e-5, 'different training');
  assert.throws(
    () => trainExperts(ds, flatDir, { ...training, gsam: { rho: 0, alpha: 0.4, adaptive: true } }),
    /GSAM needs rho > 0/,
  );
});

test("the images' moving average: FTD's rule after each update, swapped in and out exactly", () => {
  const set = SyntheticSet.create(ds, 2, 'real', new E.Generator(1));
  const [images] = set.groups.images;
  const x0 = images.detach().clone();
  set.enableEma();
  const d = 0.9;
  const x1 = x0.add(1);
  const x2 = x0.mul(2);
  E.noGrad(() => images.copy_(x1));
  set.updateEma(d);
  E.noGrad(() => images.copy_(x2));
  set.updateEma(d);
  // ema = d (d x0 + (1 - d) x1) + (1 - d) x2
  const expected = x0
    .mul(d * d)
    .add(x1.mul(d * (1 - d)))
    .add(x2.mul(1 - d));
  const inside = set.withEma(() => set.decode().images.detach().clone());
  assert.ok(inside.sub(expected).abs().max().item() < 1e-5, 'decode sees the average');
  assert.equal(images.sub(x2).abs().max().item(), 0, 'the stored images are back exactly');
  assert.ok('set.ema.0' in set.stateTensors(), 'checkpointed with the set');
});

function config(experts: string, extra: Record<string, unknown> = {}) {
  return resolveConfig(trajectoryRunInput(data, 'ftd', experts, { top: { imageEma: 0.5, ...extra } }));
}

test('FTD: a stopped run resumes bit-identical with its moving average; the artifact holds the average; raw images evaluated too', async () => {
  const { tensors, dir, result } = await assertResumesBitIdentical(
    'ftd',
    () => config(flatDir),
    2,
    config(flatDir, { evalRuns: 1, evalEpochs: 2, baselines: false }),
  );
  const ema = tensors['set.ema.0'];
  const raw = tensors['set.param.images'];
  assert.ok(ema.sub(raw).abs().max().item() > 1e-6, 'the average differs from the images');
  const art = loadArtifact(join(dir, 'artifact'));
  assert.equal(art.images.sub(ema).abs().max().item(), 0, 'the artifact holds the average');
  assert.ok(result.final && result.rawImages, 'both evaluated');
  assert.deepEqual(Object.keys(result.rawImages), Object.keys(result.final), 'the same evaluation models');
  assert.equal(resolveConfig({ method: 'ftd', methodConfig: { experts: flatDir } }).imageEma, 0.999);
});

test('FTD refuses experts trained without GSAM, with the way out', async () => {
  await assert.rejects(
    new Distiller(config(sgdDir), new RunDir(join(tempDir('ftd-sgd'), 'run'))).run({ resume: false }),
    /trained with plain SGD; train them with `distillery experts --optimizer gsam`/,
  );
});

test('`distillery experts --optimizer` accepts sgd or gsam only', () => {
  const main = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
  const r = spawnSync(process.execPath, [main, 'experts', '--dataset', data, '--optimizer', 'adam'], {
    encoding: 'utf8',
  });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /--optimizer must be sgd or gsam, got 'adam'/);
});
