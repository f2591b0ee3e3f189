// KIP: its loss and image/label gradients against finite differences in float64, the loss against an
// independent dense computation of the reference formula, a stopped run with learned regression
// targets resuming bit-identical, the artifact's targets and KRR evaluation, and bad settings.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as E from '../../src/engine/index.js';
import { loadArtifact } from '../../src/artifact/artifact.js';
import { resolveConfig } from '../../src/distill/config.js';
import { Distiller } from '../../src/distill/distiller.js';
import { kip, kipLoss, solveLabels, type KIPConfig } from '../../src/distill/methods/kip.js';
import { SyntheticSet } from '../../src/distill/synthetic.js';
import { loadDataset } from '../../src/data/registry.js';
import { RunDir } from '../../src/distill/rundir.js';
import { centredOneHot, kernelMatrix, krrPredict } from '../../src/kernels/index.js';
import { tempDir, writeSquaresFile } from '../fixtures.js';
import { assertResumesBitIdentical } from '../resume.js';
import { assertClose } from '../helpers.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const f64 = { dtype: 'float64' as const };
const cfg = (o: Record<string, unknown> = {}): KIPConfig => kip.schema.parse(o);

test('KIP loss: the reference formula (trace-scaled ridge, 0.5 mean squared error), gradients by finite differences', () => {
  const gen = new E.Generator(7);
  const xs = E.randn([4, 1, 3, 3], { ...f64, generator: gen });
  const xt = E.randn([6, 1, 3, 3], { ...f64, generator: gen });
  const ys = centredOneHot(E.tensor([0, 1, 2, 0], { dtype: 'int64' }), 3, 'float64');
  const yt = centredOneHot(E.tensor([0, 1, 2, 2, 1, 0], { dtype: 'int64' }), 3, 'float64');
  const c = cfg({ reg: 1e-3 });
  // Dense re-computation with a general solve (no Cholesky): K_ts (K_ss + reg tr/n I)^-1 Y_s.
  const kss = kernelMatrix(c.kernel as never, xs, xs);
  const kts = kernelMatrix(c.kernel as never, xt, xs);
  const ridge = (1e-3 * kss.diagonal().sum().item()) / 4;
  const pred = kts.matmul(E.linalg.solve(kss.add(E.eye(4, 4, f64).mul(ridge)), ys));
  const expected = (0.5 * pred.sub(yt).square().sum().item()) / (6 * 3);
  assertClose(kipLoss(c, xs, ys, xt, yt).item(), expected, 1e-10, 'loss');
  for (const kernel of [{}, { arch: 'conv', depth: 2 }]) {
    const ck = cfg({ reg: 1e-3, kernel });
    const r = E.gradcheck((x, y) => kipLoss(ck, x, y, xt, yt), [xs, ys.clone()], { atol: 1e-7, rtol: 1e-4 });
    assert.ok(r.ok, `${JSON.stringify(kernel)}: ${JSON.stringify(r)}`);
  }
});

const data = writeSquaresFile({ classes: 3, perClass: 20 });
function config(extra: Record<string, unknown> = {}) {
  return resolveConfig({
    dataset: data,
    method: 'kip',
    ipc: 2,
    iterations: 4,
    checkpointEvery: 2,
    evalRuns: 0,
    methodConfig: { batchReal: 6 },
    labels: { learn: true },
    ...extra,
  });
}
test('KIP with learned targets: a stopped run resumes bit-identical; the artifact keeps the targets; KRR evaluation reported', async () => {
  const {
    tensors,
    dir: full,
    result,
  } = await assertResumesBitIdentical(
    'kip',
    config,
    2,
    config({ evalRuns: 1, evalEpochs: 2, baselines: false }),
  );
  const a = { tensors };
  assert.ok(
    'set.labelTargets' in a.tensors && 'optimizer.labels.expAvg.0' in a.tensors,
    'targets learned by Adam',
  );
  const targets = a.tensors['set.labelTargets'];
  // They moved from their centred one-hot start.
  const start = centredOneHot(E.tensor([0, 0, 1, 1, 2, 2], { dtype: 'int64' }), 3);
  assert.ok(targets.sub(start).abs().max().item() > 1e-4, 'targets were updated');
  const art = loadArtifact(join(full, 'artifact'));
  assert.equal(art.meta.labels, 'hard');
  assert.equal(art.meta.learnedLabels, true);
  assert.deepEqual(art.labels.toNumbers(), targets.argmax(1).toNumbers());
  assert.deepEqual(art.labelTargets?.toNumbers(), targets.toNumbers(), 'the artifact keeps the targets');
  // `distillery eval` trains on the targets with the chosen loss and records it; a bad loss is a usage error.
  const evalCli = (loss: string) =>
    spawnSync(
      process.execPath,
      [
        MAIN,
        'eval',
        join(full, 'artifact'),
        '--runs',
        '1',
        '--epochs',
        '1',
        '--no-baselines',
        '--json',
        '--target-loss',
        loss,
      ],
      { encoding: 'utf8' },
    );
  const ok = evalCli('softmax');
  assert.equal(ok.status, 0, ok.stderr);
  assert.equal(JSON.parse(ok.stdout.trim().split('\n').pop() as string).targetLoss, 'softmax');
  const bad = evalCli('hinge');
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--target-loss must be one of mse, softmax, argmax, got 'hinge'/);
  assert.ok(result.own && result.own.accuracy >= 0 && result.own.accuracy <= 1, JSON.stringify(result.own));
  assert.match(result.own.name, /KRR with the fc NTK/);
});

test('KIP: labels are regression targets, so teacher or uniform initialisations are refused with the way out', async () => {
  await assert.rejects(
    new Distiller(
      config({ labels: { init: 'uniform', learn: true } }),
      new RunDir(join(tempDir('kip-bad'), 'run')),
    ).run({
      resume: false,
    }),
    /labels.init must be 'hard'/,
  );
  assert.throws(() => cfg({ kernel: { arch: 'rbf' } }));
  assert.throws(() => cfg({ reg: -1 }));
});

test("KIP's Label Solve: the solved targets are the least-squares optimum for the drawn real batch; a run with 0 iterations keeps them", async () => {
  const ds = loadDataset(data);
  const c = cfg({ reg: 1e-12, labelSolve: 5 });
  const set = SyntheticSet.create(ds, 2, 'real', new E.Generator(3), {
    labels: { init: 'hard', learn: true },
    labelSpace: 'targets',
  });
  const gen = new E.Generator(11);
  const replay = new E.Generator(11);
  solveLabels(ds, set, gen, c);
  // The same real batch, drawn again from an identically seeded stream.
  const real = ds.gather(ds.sampleIndices(5, replay));
  const xs = set.decode().images.detach().double();
  const xt = real.images.double();
  const yt = centredOneHot(real.labels, 3, 'float64');
  const kss = kernelMatrix(c.kernel as never, xs, xs);
  const kts = kernelMatrix(c.kernel as never, xt, xs);
  const y = set.labels.detach().double().requiresGrad_();
  const err = (t: E.Tensor) => krrPredict(kts, kss, t, 1e-12).sub(yt).square().sum();
  const g = E.grad(err(y), [y])[0];
  assert.ok(g.abs().max().item() < 1e-4, `gradient at the solved targets ${g.abs().max().item()}`);
  const onehot = centredOneHot(E.tensor([0, 0, 1, 1, 2, 2], { dtype: 'int64' }), 3, 'float64');
  assert.ok(err(onehot).item() > err(y).item() + 1e-6, 'fits better than the centred one-hot start');
  // Through the Distiller: iterations 0 is the paper's LS alone, the artifact keeps the solved targets.
  const dir = join(tempDir('kip-ls'), 'run');
  await new Distiller(
    config({ iterations: 0, methodConfig: { batchReal: 6, labelSolve: 5 } }),
    new RunDir(dir),
  ).run({
    resume: false,
  });
  const art = loadArtifact(join(dir, 'artifact'));
  const targets = art.labelTargets as E.Tensor;
  assert.ok(targets.sub(onehot.float()).abs().max().item() > 1e-3, 'solved targets differ from one-hot');
  // Without learned labels, or with too few targets, a clear error.
  const hard = SyntheticSet.create(ds, 2, 'real', new E.Generator(3), { labelSpace: 'targets' });
  assert.throws(() => solveLabels(ds, hard, gen, c), /set labels.learn true/);
  assert.throws(() => solveLabels(ds, set, gen, cfg({ labelSolve: 1 })), /raise it to 2/);
});
