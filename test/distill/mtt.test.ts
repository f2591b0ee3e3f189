// Trajectory matching: expert trajectories (files, resume, validation), MTT's
// unrolled gradient against finite differences and TESLA's constant-memory
// gradient against MTT's, in float64; MTT/TESLA runs through the Distiller with
// the learned lr in the artifact, and an interrupted run resumes bit-identically.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
  adjointGradients,
  iterationProblem,
  mtt,
  nextExpertIndex,
  teslaGradients,
  unrolledGradients,
  unrolledLoss,
  type TrajectoryConfig,
  type TrajectoryProblem,
} from '../../src/distill/methods/mtt.js';
import { RunDir } from '../../src/distill/rundir.js';
import { supConLoss } from '../../src/distill/methods/haba.js';
import { newSession, runIterations } from '../../src/distill/session.js';
import { createNetwork, flattenParams, paramLayout } from '../../src/models/index.js';
import { TINY_EXPERTS, tempDir, trajectoryRunInput, writeSquaresFile } from '../fixtures.js';
import { assertAllClose, referenceFixture } from '../helpers.js';

const data = writeSquaresFile({ classes: 3, perClass: 20 });
const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const training: ExpertTraining = { ...TINY_EXPERTS };
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

/**
 * A tiny float64 problem: 3 student steps on minibatches, with DSA draws fixed. The images are a
 * differentiable function of a learnable tensor (as a factorised parameterization decodes them), and
 * learned labels are the softmax of learnable logits.
 */
function tinyProblem(
  withDsa: boolean,
  learnedLabels = false,
): { problem: TrajectoryProblem; wrt: E.Tensor[]; names: string[] } {
  const gen = new E.Generator(9);
  const net = createNetwork('ConvNetW4D1', [1, 6, 6], 3);
  const toDouble = (s: ReturnType<typeof net.init>) => ({
    params: new Map([...s.params].map(([k, t]) => [k, t.double()])),
    buffers: new Map(),
  });
  const start = flattenParams(toDouble(net.init(gen)));
  const target = start.add(E.randn(start.shape, { dtype: 'float64', generator: gen }).mul(0.05));
  const code = E.randn([6, 1, 6, 6], { dtype: 'float64', generator: gen }).requiresGrad_();
  const images = code.tanh().mul(2); // decoded: shared by every step's graph
  const lr = E.tensor(0.05, { dtype: 'float64', shape: [] }).requiresGrad_();
  const dsa = withDsa ? new DSA({ strategy: 'color_scale' }) : null;
  const steps = [0, 1, 2].map(() => {
    const indices = E.randperm(6, { generator: gen }).narrow(0, 0, 4);
    return { indices, draws: dsa ? dsa.sample(4, gen, { sharedGroup: true }) : null };
  });
  const logits = E.randn([6, 3], { dtype: 'float64', generator: gen }).requiresGrad_();
  const problem: TrajectoryProblem = {
    net,
    layout: paramLayout(toDouble(net.init(new E.Generator(0)))),
    start,
    target,
    images,
    labels: learnedLabels ? E.nn.softmax(logits, 1) : E.tensor([0, 1, 2, 0, 1, 2], { dtype: 'int64' }),
    lr,
    steps,
    dsa,
  };
  return learnedLabels
    ? { problem, wrt: [code, logits, lr], names: ['image code', 'label logits', 'lr'] }
    : { problem, wrt: [code, lr], names: ['image code', 'lr'] };
}

for (const [withDsa, learned] of [
  [false, false],
  [true, false],
  [true, true],
]) {
  const what = [withDsa ? 'DSA' : '', learned ? 'learned label logits' : ''].filter(Boolean).join(', ');
  test(`MTT: unrolled gradient = finite differences = adjoint gradient, through a decoder (float64${what ? `, ${what}` : ''})`, () => {
    const { problem, wrt, names } = tinyProblem(withDsa, learned);
    const rebuild = (x: E.Tensor[]): TrajectoryProblem => ({
      ...problem,
      images: x[0].tanh().mul(2),
      labels: learned ? E.nn.softmax(x[1], 1) : problem.labels,
      lr: x[x.length - 1],
    });
    const check = E.gradcheck((...x) => unrolledLoss(rebuild(x)), wrt);
    assert.ok(check.relError < 1e-5, `MTT vs finite differences: relative error ${check.relError}`);
    // Each gradient decodes afresh (as a method step does); the adjoint differentiates the decoder
    // graph once per student step, so it must keep that graph between steps.
    const unrolled = unrolledGradients(rebuild(wrt), wrt);
    const adjoint = adjointGradients(rebuild(wrt), wrt);
    assert.ok(Math.abs(unrolled.loss - adjoint.loss) < 1e-12, 'same loss');
    unrolled.grads.forEach((g, i) => {
      const diff = g.sub(adjoint.grads[i]).abs().max().item();
      const scale = g.abs().max().item();
      assert.ok(scale > 0, `${names[i]} gradient is not zero`);
      assert.ok(diff <= 1e-6 * scale, `${names[i]} gradient: ${diff} (scale ${scale})`);
    });
    // TESLA's published gradient drops the Hessian terms: the same loss, a different gradient.
    const tesla = teslaGradients(rebuild(wrt), wrt);
    assert.ok(Math.abs(unrolled.loss - tesla.loss) < 1e-12, 'TESLA reports the same loss');
    const cosine = (a: E.Tensor, b: E.Tensor) => a.mul(b).sum().div(a.norm().mul(b.norm())).item();
    const c = cosine(unrolled.grads[0], tesla.grads[0]);
    assert.ok(c > 0.5 && c < 0.99999, `image-gradient cosine TESLA vs exact: ${c}`);
  });
}

function distill(
  method: string,
  out: string,
  stopAt?: number,
  extra: Record<string, unknown> = {},
  top: Record<string, unknown> = {},
) {
  const config = resolveConfig(
    trajectoryRunInput(data, method, expertsDir, {
      top: { ...top, optimizers: { lr: { lr: 1e-3 }, ...(top.optimizers as object) } },
      methodConfig: extra,
    }),
  );
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
    assert.equal(artifact.meta.labels, 'hard', 'hard labels by default, as both references');
  }
});

test("TESLA's teacher labels: recomputed each iteration from the target expert, soft in the artifact", async () => {
  const out = join(tempDir('tesla-teacher'), 'run');
  await distill('tesla', out, undefined, { softLabels: 'teacher' });
  const { labels, meta } = loadArtifact(join(out, 'artifact'));
  assert.equal(meta.labels, 'soft');
  assert.ok(labels.sum(1).sub(1).abs().max().item() < 1e-5, 'rows are probabilities');
});

test("MTT's adjoint option runs the exact gradient through the Distiller: it lands where unrolled MTT does, TESLA does not", async () => {
  const images = async (method: string, extra: Record<string, unknown>) => {
    const out = join(tempDir(`${method}-option`), 'run');
    await distill(method, out, undefined, extra);
    return loadArtifact(join(out, 'artifact')).images;
  };
  const unrolled = await images('mtt', {});
  const adjoint = await images('mtt', { gradient: 'adjoint' });
  const tesla = await images('tesla', {});
  const gap = (a: E.Tensor) => a.sub(unrolled).abs().max().item();
  // float32 rounding (amplified by the image lr of 100 over 4 iterations) against a different gradient.
  assert.ok(gap(adjoint) < 0.1 * gap(tesla), `adjoint ${gap(adjoint)} vs TESLA ${gap(tesla)} from unrolled`);
});

test("the learned lr takes the known first step: lr - lr_lr * dL/dlr in the optimizer's 'lr' group (PyTorch's momentum buffer starts at the gradient)", async () => {
  const ds = loadDataset(data);
  // Image lr 0 (a frozen group): the images stay as they were, so the iteration can be replayed.
  const session = newSession(
    ds,
    resolveConfig({
      dataset: data,
      method: 'mtt',
      ipc: 2,
      model: 'ConvNetW8',
      seed: 5,
      optimizer: { lr: 0 },
      optimizers: { lr: { lr: 1e-3 } },
      methodConfig: { experts: expertsDir, synSteps: 3, expertEpochs: 1, maxStartEpoch: 2 },
    }),
  );
  const { synthetic, gen, ctx } = session;
  const lr0 = (synthetic.lr as E.Tensor).item();
  const snapshot = gen.getState();
  await runIterations(session, 0, 1);
  const lr1 = (synthetic.lr as E.Tensor).item();
  // The same iteration from the same stream, at the initial lr: its exact lr gradient.
  synthetic.setLr(E.tensor(lr0, { shape: [] }).requiresGrad_());
  const replay = new E.Generator(0);
  replay.setState(snapshot);
  const config = session.config.methodConfig as TrajectoryConfig;
  const problem = iterationProblem({ ...ctx, gen: replay, state: new Map() }, config);
  const g = unrolledGradients(problem, [problem.lr]).grads[0].item();
  assert.ok(Math.abs(g) > 1e-4, `a gradient to follow (${g})`);
  const expected = lr0 - 1e-3 * g;
  assert.ok(Math.abs(lr1 - expected) <= 1e-6 * Math.abs(lr0), `lr ${lr0} -> ${lr1}, expected ${expected}`);
  assert.ok(Math.sign(lr1 - lr0) === -Math.sign(g), 'it moves against the gradient');
});

test("runs recorded with MTT's own optimizer settings resolve to the group optimizers", () => {
  const c = resolveConfig({
    dataset: data,
    method: 'mtt',
    methodConfig: { experts: expertsDir, lrLr: 1e-7, learnLabels: true, lrLabels: 2, softLabels: 'fixed' },
  });
  assert.deepEqual(c.optimizers.lr, { kind: 'sgd', lr: 1e-7, momentum: 0.5 });
  assert.deepEqual(c.optimizers.labels, { kind: 'sgd', lr: 2, momentum: 0.5 });
  assert.equal(c.labels.learn, true);
  assert.ok(!('lrLr' in c.methodConfig));
});

test('experts are walked as the references do (load_all off): each pass a shuffled order without replacement', () => {
  const config = mtt.schema.parse({ experts: expertsDir });
  assert.equal(config.expertSampling, 'walk');
  const state = new Map<string, E.Tensor>();
  const gen = new E.Generator(1);
  const picks = Array.from({ length: 15 }, () => nextExpertIndex(5, config, gen, state));
  const passes = [0, 5, 10].map((i) => picks.slice(i, i + 5));
  for (const p of passes) assert.deepEqual([...p].sort(), [0, 1, 2, 3, 4], `one pass: ${p.join(',')}`);
  assert.ok(
    passes.some((p) => p.join() !== passes[0].join()),
    'each pass is reshuffled',
  );
  // --load_all: with replacement, so some draw repeats within 15 picks of 5 experts.
  const uniform = { ...config, expertSampling: 'uniform' as const };
  const draws = Array.from({ length: 15 }, () => nextExpertIndex(5, uniform, gen, new Map()));
  assert.ok(
    [0, 5, 10].some((i) => new Set(draws.slice(i, i + 5)).size < 5),
    draws.join(','),
  );
});

test("a run recorded with the former boolean softLabels resolves to the mode it meant (true: 'fixed')", () => {
  assert.equal(mtt.schema.parse({ experts: expertsDir, softLabels: true }).softLabels, 'fixed');
  assert.equal(mtt.schema.parse({ experts: expertsDir, softLabels: false }).softLabels, 'off');
  assert.throws(
    () => mtt.schema.parse({ experts: expertsDir, softLabels: 'yes' }),
    /'off' \| 'teacher' \| 'fixed'/,
  );
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
  for (const key of [
    'set.param.images',
    'set.lr',
    'optimizer.lr.momentum.0',
    'method.expertOrder',
    'method.expertNext',
  ])
    assert.deepEqual(a[key].toNumbers(), b[key].toNumbers(), `${key} identical`);
});

test('learned soft labels (logits): they move, stay on the simplex, and a resumed run ends identical', async () => {
  const learn = { softLabels: 'fixed' };
  const top = { labels: { learn: true }, optimizers: { labels: { lr: 1 } } };
  const full = join(tempDir('tesla-labels-full'), 'run');
  await distill('tesla', full, undefined, learn, top);
  const part = join(tempDir('tesla-labels-part'), 'run');
  assert.ok((await distill('tesla', part, 2, learn, top)).interrupted);
  const config = new RunDir(part).readRecord().config;
  await new Distiller(config, new RunDir(part)).run({ resume: true });
  const a = E.loadSafetensors(join(full, 'checkpoint.safetensors')).tensors;
  const b = E.loadSafetensors(join(part, 'checkpoint.safetensors')).tensors;
  for (const key of [
    'set.param.images',
    'set.labelLogits',
    'set.lr',
    'optimizer.lr.momentum.0',
    'optimizer.labels.momentum.0',
  ])
    assert.equal(a[key].sub(b[key]).abs().max().item(), 0, `${key} identical`);
  // The artifact holds probabilities (softmax of the logits), and they differ from the fixed expert labels.
  const learned = loadArtifact(join(full, 'artifact')).labels;
  assert.ok(learned.sum(1).sub(1).abs().max().item() < 1e-5, 'rows sum to 1');
  assert.ok(learned.min().item() >= 0, 'no negative probabilities');
  const fixed = join(tempDir('tesla-labels-fixed'), 'run');
  await distill('tesla', fixed, undefined, { softLabels: 'fixed' });
  const kept = loadArtifact(join(fixed, 'artifact')).labels;
  assert.ok(learned.sub(kept).abs().max().item() > 1e-4, 'the labels were learned');
  await assert.rejects(
    distill('tesla', join(tempDir('tesla-teacher-learn'), 'run'), undefined, { softLabels: 'teacher' }, top),
    /softLabels 'teacher' recomputes the labels every iteration, so they cannot be learned/,
  );
  assert.throws(
    () =>
      resolveConfig({
        dataset: data,
        method: 'tesla',
        methodConfig: { experts: expertsDir, gradient: 'adjoint' },
      }),
    /gradient/,
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
    'methodConfig.maxStartEpoch=1',
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

test("HaBa's SupCon loss equals the reference's SupConLoss, value and gradient", () => {
  const f = referenceFixture('haba');
  const feats = f.get('supcon.features').clone().requiresGrad_();
  const normed = feats.div(feats.norm(2, 2, true).clamp(1e-12));
  const loss = supConLoss(normed, f.get('supcon.labels'));
  assertAllClose(loss, f.get('supcon.loss'), 1e-5, 'SupCon loss');
  assertAllClose(E.grad(loss, [feats])[0], f.get('supcon.grad'), 1e-4, 'SupCon gradient');
});

test('HaBa distills bases x hallucinators with its adversary; a stopped run resumes bit-identical', async () => {
  const top = {
    ipc: 3,
    parameterization: { kind: 'haba', hallucinators: 2 },
    optimizer: { lr: 10, momentum: 0.95 },
  };
  const extra = { adversaryModel: 'ConvNetW8', minLr: 0.005 };
  const haba = (out: string, stopAt?: number) => distill('haba', out, stopAt, extra, top);
  const full = join(tempDir('haba-full'), 'run');
  await haba(full);
  const part = join(tempDir('haba-part'), 'run');
  assert.ok((await haba(part, 2)).interrupted);
  await new Distiller(new RunDir(part).readRecord().config, new RunDir(part)).run({ resume: true });
  const a = E.loadSafetensors(join(full, 'checkpoint.safetensors')).tensors;
  const b = E.loadSafetensors(join(part, 'checkpoint.safetensors')).tensors;
  assert.ok(
    Object.keys(a).some((k) => k.startsWith('method.adversary.momentum.')),
    'the adversary trained',
  );
  assert.ok(
    Object.keys(a).some((k) => k.startsWith('optimizer.decoder.')),
    'the hallucinators trained',
  );
  for (const [key, t] of Object.entries(a))
    assert.deepEqual(t.toNumbers(), b[key].toNumbers(), `${key} identical`);
  assert.ok(a['set.lr'].item() >= 0.005 - 1e-9, 'the lr is clipped at minLr');
  const art = loadArtifact(join(full, 'artifact'));
  assert.equal(art.meta.parameterization.kind, 'haba');
  assert.equal(art.meta.decodedPerClass, 2);
  await assert.rejects(
    distill('haba', join(tempDir('haba-pixels'), 'run'), undefined, extra, {
      parameterization: { kind: 'pixels' },
    }),
    /haba trains the 'haba' parameterization/,
  );
});

test('a run recorded and checkpointed before the group optimizers (old keys, lrLr in methodConfig) resumes to the same end', async () => {
  const full = join(tempDir('legacy-full'), 'run');
  await distill('mtt', full);
  const part = join(tempDir('legacy-part'), 'run');
  assert.ok((await distill('mtt', part, 2)).interrupted);
  // Rewrite the run as the previous version wrote it.
  const dir = new RunDir(part);
  const record = dir.readRecord();
  const old = { ...(record.config as unknown as Record<string, unknown>) };
  const methodConfig = { ...(old.methodConfig as Record<string, unknown>), lrLr: 1e-3 };
  delete old.optimizers;
  delete old.labels;
  delete old.parameterization;
  writeFileSync(dir.runJson, JSON.stringify({ ...record, config: { ...old, methodConfig } }));
  const { tensors, metadata } = E.loadSafetensors(dir.checkpoint);
  const renamed: Record<string, string> = {
    'set.param.images': 'images',
    'set.labels': 'labels',
    'set.lr': 'lr',
    'optimizer.images.momentum.0': 'optimizer.momentum.0',
    'optimizer.lr.momentum.0': 'method.lrMomentum',
  };
  const legacy = Object.fromEntries(Object.entries(tensors).map(([k, t]) => [renamed[k] ?? k, t]));
  const images = (JSON.parse(metadata.optimizer) as Record<string, unknown>).images;
  E.saveSafetensors(dir.checkpoint, legacy, {
    iteration: metadata.iteration,
    optimizer: JSON.stringify(images),
  });
  const config = resolveConfig(dir.readRecord().config as unknown as Record<string, unknown>);
  await new Distiller(config, dir).run({ resume: true });
  const a = E.loadSafetensors(join(full, 'checkpoint.safetensors')).tensors;
  const b = E.loadSafetensors(dir.checkpoint).tensors;
  for (const key of ['set.param.images', 'set.lr', 'optimizer.images.momentum.0', 'optimizer.lr.momentum.0'])
    assert.deepEqual(a[key].toNumbers(), b[key].toNumbers(), `${key} identical`);
});
