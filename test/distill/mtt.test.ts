// Trajectory matching: expert trajectories (files, resume, validation), MTT's
// unrolled gradient against finite differences and TESLA's constant-memory
// gradient against MTT's, in float64; MTT/TESLA runs through the Distiller with
// the learned lr in the artifact, and an interrupted run resumes bit-identically.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as E from '../../src/engine/index.js';
import { DSA } from '../../src/augment/index.js';
import { loadArtifact } from '../../src/artifact/artifact.js';
import { loadDataset } from '../../src/data/registry.js';
import { resolveConfig } from '../../src/distill/config.js';
import { Distiller } from '../../src/distill/distiller.js';
import { ExpertSet, expertEpochFile, trainExperts, type ExpertTraining } from '../../src/distill/experts.js';
import {
  constantMemoryGradients,
  unrolledGradients,
  unrolledLoss,
  type TrajectoryProblem,
} from '../../src/distill/methods/mtt.js';
import { RunDir } from '../../src/distill/rundir.js';
import { createNetwork, flattenParams, paramLayout } from '../../src/models/index.js';
import { tempDir, writeSquaresFile } from '../fixtures.js';

const data = writeSquaresFile({ classes: 3, perClass: 20 });
const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const training: ExpertTraining = {
  model: 'ConvNetW8',
  experts: 2,
  epochs: 3,
  lr: 0.01,
  batchSize: 16,
  augment: true,
  seed: 0,
};
const expertsDir = join(tempDir('experts'), 'e');
trainExperts(loadDataset(data), expertsDir, training);

test('experts: one checkpoint per epoch (0..E) per expert; an interrupted run resumes bit-identically', () => {
  const ds = loadDataset(data);
  const last = expertEpochFile(expertsDir, 1, 3);
  const before = readFileSync(last);
  // Lose the last two epochs of expert 1, as if the run had been killed.
  rmSync(last);
  rmSync(expertEpochFile(expertsDir, 1, 2));
  let resumedFrom = -1;
  trainExperts(ds, expertsDir, training, { onStart: ({ done }) => (resumedFrom = done) });
  assert.equal(resumedFrom, 4 + 2, 'the finished epochs were kept');
  assert.ok(readFileSync(last).equals(before), 'the resumed expert ends with the same bytes');
  const set = new ExpertSet(expertsDir, ds, 'ConvNetW8');
  assert.deepEqual(set.complete, [0, 1]);
  const start = set.load(0, 0);
  const end = set.load(0, 3);
  assert.ok(end.sub(start).abs().max().item() > 1e-4, 'the expert trained');
});

test('experts: mismatched settings, model or dataset are refused with the reason; the count may change', () => {
  const ds = loadDataset(data);
  assert.throws(
    () => trainExperts(ds, expertsDir, { ...training, lr: 0.1 }),
    /different settings \(training\)/,
  );
  assert.throws(
    () => new ExpertSet(expertsDir, ds, 'ConvNetW16'),
    /their model is ConvNetW8, not ConvNetW16/,
  );
  const other = loadDataset(writeSquaresFile({ classes: 3, perClass: 21 }));
  assert.throws(() => new ExpertSet(expertsDir, other, 'ConvNetW8'), /they were trained on/);
  assert.throws(() => new ExpertSet(tempDir('none'), ds, 'ConvNetW8'), /no manifest\.json/);
  // Only the expert count may change: fewer uses the first N (nothing retrained), more extends.
  trainExperts(ds, expertsDir, { ...training, experts: 1 });
  assert.deepEqual(new ExpertSet(expertsDir, ds, 'ConvNetW8').complete, [0]);
  trainExperts(ds, expertsDir, training);
  assert.deepEqual(new ExpertSet(expertsDir, ds, 'ConvNetW8').complete, [0, 1]);
});

/** A tiny float64 problem: 3 student steps on minibatches, with DSA draws fixed; hard or learnable soft labels. */
function tinyProblem(
  withDsa: boolean,
  softLabels = false,
): { problem: TrajectoryProblem; images: E.Tensor; lr: E.Tensor } {
  const gen = new E.Generator(9);
  const net = createNetwork('ConvNetW4D1', [1, 6, 6], 3);
  const toDouble = (s: ReturnType<typeof net.init>) => ({
    params: new Map([...s.params].map(([k, t]) => [k, t.double()])),
    buffers: new Map(),
  });
  const start = flattenParams(toDouble(net.init(gen)));
  const target = start.add(E.randn(start.shape, { dtype: 'float64', generator: gen }).mul(0.05));
  const images = E.randn([6, 1, 6, 6], { dtype: 'float64', generator: gen }).requiresGrad_();
  const lr = E.tensor(0.05, { dtype: 'float64', shape: [] }).requiresGrad_();
  const dsa = withDsa ? new DSA({ strategy: 'color_scale' }) : null;
  const steps = [0, 1, 2].map(() => {
    const indices = E.randperm(6, { generator: gen }).narrow(0, 0, 4);
    return { indices, draws: dsa ? dsa.sample(4, gen, { sharedGroup: true }) : null };
  });
  const problem: TrajectoryProblem = {
    net,
    layout: paramLayout(toDouble(net.init(new E.Generator(0)))),
    start,
    target,
    images,
    labels: softLabels
      ? E.nn.softmax(E.randn([6, 3], { dtype: 'float64', generator: gen }), 1).requiresGrad_()
      : E.tensor([0, 1, 2, 0, 1, 2], { dtype: 'int64' }),
    lr,
    steps,
    dsa,
  };
  return { problem, images, lr };
}

for (const [withDsa, soft] of [
  [false, false],
  [true, false],
  [true, true],
]) {
  const what = [withDsa ? 'DSA' : '', soft ? 'learned soft labels' : ''].filter(Boolean).join(', ');
  test(`MTT's unrolled gradient equals finite differences and TESLA's equals MTT's (float64${what ? `, ${what}` : ''})`, () => {
    const { problem, images, lr } = tinyProblem(withDsa, soft);
    const wrt = soft ? [images, problem.labels, lr] : [images, lr];
    const names = soft ? ['image', 'label', 'lr'] : ['image', 'lr'];
    const check = E.gradcheck(
      (...x) =>
        unrolledLoss({ ...problem, images: x[0], labels: soft ? x[1] : problem.labels, lr: x[x.length - 1] }),
      wrt,
    );
    assert.ok(check.relError < 1e-5, `MTT vs finite differences: relative error ${check.relError}`);
    const mtt = unrolledGradients(problem, wrt);
    const tesla = constantMemoryGradients(problem, wrt);
    assert.ok(Math.abs(mtt.loss - tesla.loss) < 1e-12, 'same loss');
    mtt.grads.forEach((g, i) => {
      const diff = g.sub(tesla.grads[i]).abs().max().item();
      const scale = g.abs().max().item();
      assert.ok(scale > 0, `${names[i]} gradient is not zero`);
      assert.ok(diff <= 1e-6 * scale, `${names[i]} gradient: ${diff} (scale ${scale})`);
    });
  });
}

function distill(method: string, out: string, stopAt?: number, extra: Record<string, unknown> = {}) {
  const config = resolveConfig({
    dataset: data,
    method,
    ipc: 2,
    model: 'ConvNetW8',
    iterations: 4,
    checkpointEvery: 2,
    evalRuns: 0,
    optimizer: { lr: 100 },
    methodConfig: {
      experts: expertsDir,
      synSteps: 3,
      expertEpochs: 1,
      maxStartEpoch: 2,
      lrLr: 1e-3,
      ...extra,
    },
  });
  const runDir = new RunDir(out);
  const d: Distiller = new Distiller(config, runDir, {
    onIteration: ({ iteration }) => {
      if (iteration === stopAt) d.requestStop();
    },
  });
  return d.run({ resume: false });
}

test('MTT and TESLA distill through the Distiller; the learned lr moves and lands in the artifact', async () => {
  for (const method of ['mtt', 'tesla']) {
    const out = join(tempDir(method), 'run');
    await distill(method, out);
    const artifact = loadArtifact(join(out, 'artifact'));
    // The initial lr as stored (float32); an unchanged lr would come back exactly as this.
    assert.ok(
      artifact.lr !== null && artifact.lr !== Math.fround(0.01),
      `${method}: learned lr ${artifact.lr}`,
    );
    assert.equal(artifact.meta.labels, method === 'tesla' ? 'soft' : 'hard');
  }
});

test('an MTT run stopped after a checkpoint resumes to the same images, lr and lr momentum', async () => {
  const full = join(tempDir('mtt-full'), 'run');
  await distill('mtt', full);
  const part = join(tempDir('mtt-part'), 'run');
  const stopped = await distill('mtt', part, 2);
  assert.ok(stopped.interrupted);
  const config = new RunDir(part).readRecord().config;
  await new Distiller(config, new RunDir(part)).run({ resume: true });
  const a = E.loadSafetensors(join(full, 'checkpoint.safetensors')).tensors;
  const b = E.loadSafetensors(join(part, 'checkpoint.safetensors')).tensors;
  for (const key of ['images', 'lr', 'method.lrMomentum'])
    assert.equal(a[key].sub(b[key]).abs().max().item(), 0, `${key} identical`);
});

test('TESLA with learned soft labels: the labels move, and a resumed run ends identical (labels, their momentum)', async () => {
  const learn = { learnLabels: true, lrLabels: 1 };
  const full = join(tempDir('tesla-labels-full'), 'run');
  await distill('tesla', full, undefined, learn);
  const part = join(tempDir('tesla-labels-part'), 'run');
  assert.ok((await distill('tesla', part, 2, learn)).interrupted);
  const config = new RunDir(part).readRecord().config;
  await new Distiller(config, new RunDir(part)).run({ resume: true });
  const a = E.loadSafetensors(join(full, 'checkpoint.safetensors')).tensors;
  const b = E.loadSafetensors(join(part, 'checkpoint.safetensors')).tensors;
  for (const key of ['images', 'labels', 'lr', 'method.lrMomentum', 'method.labelMomentum'])
    assert.equal(a[key].sub(b[key]).abs().max().item(), 0, `${key} identical`);
  // The labels the artifact holds are no longer the teacher's probabilities: rows no longer sum to 1.
  const labels = loadArtifact(join(full, 'artifact')).labels;
  const rowSums = labels.sum(1);
  assert.ok(rowSums.sub(1).abs().max().item() > 1e-6, 'the labels were learned');
  assert.throws(
    () =>
      resolveConfig({
        dataset: data,
        method: 'mtt',
        methodConfig: { experts: expertsDir, learnLabels: true },
      }),
    /learnLabels needs softLabels/,
  );
});

test('CLI: `experts` then `distill --method tesla --experts DIR`; a model the experts do not fit is refused', () => {
  const dir = join(tempDir('experts-cli'), 'e');
  const cli = (args: string[]) => spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8' });
  const made = cli(
    ['experts', '--dataset', data, '--model', 'ConvNetW8', '--experts', '1', '--epochs', '2'].concat([
      '--batch',
      '16',
      '--out',
      dir,
      '--json',
    ]),
  );
  assert.equal(made.status, 0, made.stderr);
  assert.ok(existsSync(expertEpochFile(dir, 0, 2)));
  const common = [
    'distill',
    '--dataset',
    data,
    '--method',
    'tesla',
    '--ipc',
    '1',
    '--iterations',
    '2',
    '--experts',
    dir,
  ].concat([
    '--eval-runs',
    '0',
    '--json',
    '--set',
    'methodConfig.maxStartEpoch=0',
    'methodConfig.expertEpochs=1',
  ]);
  const out = join(tempDir('tesla-cli'), 'run');
  const run = cli([...common, '--model', 'ConvNetW8', '--out', out]);
  assert.equal(run.status, 0, run.stderr);
  assert.equal(typeof loadArtifact(join(out, 'artifact')).lr, 'number');
  const wrong = cli([...common, '--model', 'ConvNetW16', '--out', join(tempDir('tesla-bad'), 'run')]);
  assert.notEqual(wrong.status, 0);
  assert.match(wrong.stderr, /their model is ConvNetW8, not ConvNetW16/);
});
