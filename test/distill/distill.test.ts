// The framework and DM: resume after SIGKILL is bit-identical, bad input fails clearly,
// and DM actually improves its objective.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as E from '../../src/engine/index.js';
import { loadDataset } from '../../src/data/registry.js';
import { resolveConfig } from '../../src/distill/config.js';
import { Distiller } from '../../src/distill/distiller.js';
import { RunDir } from '../../src/distill/rundir.js';
import { contextWithOptimizer } from '../../src/distill/method.js';
import { dm } from '../../src/distill/methods/dm.js';
import { SyntheticSet } from '../../src/distill/synthetic.js';
import { createNetwork } from '../../src/models/index.js';
import { DSA, defaultStrategy } from '../../src/augment/index.js';
import { tempDir, writeSquaresFile } from '../fixtures.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const data = writeSquaresFile({ classes: 3, perClass: 40 });
const BASE = [
  'distill',
  '--dataset',
  data,
  '--method',
  'dm',
  '--ipc',
  '2',
  '--model',
  'ConvNetW32',
  '--eval-runs',
  '0',
  '--json',
];

function cli(args: string[]) {
  return spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8' });
}

/** Every tensor of the run's artifact (decoded images, labels, stored parameterization tensors). */
function artifactTensors(runDir: string): Record<string, number[]> {
  const { tensors } = E.loadSafetensors(join(runDir, 'artifact', 'synthetic.safetensors'));
  return Object.fromEntries(Object.entries(tensors).map(([k, t]) => [k, t.toNumbers()]));
}

const KILL_VARIANTS: [string, string[]][] = [
  ['DM on pixels', []],
  [
    'DC on LinBa with learned labels',
    [
      '--method',
      'dc',
      '--set',
      'parameterization={"kind":"linba","bases":4,"downsample":2}',
      '--set',
      'labels.learn=true',
      '--set',
      'methodConfig.outerLoop=1',
      '--model',
      'ConvNetW8',
      '--set',
      'methodConfig.batchReal=10',
    ],
  ],
];

for (const [what, extra] of KILL_VARIANTS) {
  test(`a run killed (SIGKILL) between checkpoints resumes to a bit-identical synthetic set (${what})`, async () => {
    const args = [
      ...BASE,
      '--iterations',
      '40',
      '--checkpoint-every',
      '10',
      '--set',
      'methodConfig.batchReal=40',
      ...extra,
    ];
    const full = join(tempDir('resume'), 'full');
    const r = cli([...args, '--out', full]);
    assert.equal(r.status, 0, r.stderr);

    const killed = join(tempDir('resume'), 'killed');
    const child = spawn(process.execPath, [MAIN, ...args, '--out', killed], { stdio: 'ignore' });
    const metrics = join(killed, 'metrics.jsonl');
    let lines = 0;
    while (lines < 15) {
      await new Promise((res) => setTimeout(res, 5));
      lines = existsSync(metrics) ? readFileSync(metrics, 'utf8').split('\n').filter(Boolean).length : 0;
      assert.equal(
        child.exitCode,
        null,
        'the run finished before it could be killed; make the test configuration slower',
      );
    }
    child.kill('SIGKILL');
    await new Promise((res) => child.once('exit', res));
    assert.ok(!existsSync(join(killed, 'artifact')), 'killed before the end');
    const resumed = cli(['distill', '--resume', killed, '--json']);
    assert.equal(resumed.status, 0, resumed.stderr);
    assert.deepEqual(artifactTensors(killed), artifactTensors(full));
    const iterations = readFileSync(metrics, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l).iteration);
    assert.deepEqual(
      iterations,
      Array.from({ length: 40 }, (_, i) => i + 1),
      'metrics hold each iteration exactly once',
    );
  });
}

test('DM lowers its matching loss and moves the images', () => {
  const ds = loadDataset(data);
  const gen = new E.Generator(0);
  const synthetic = SyntheticSet.create(ds, 2, 'real', gen);
  const start = synthetic.parameterization.tensors[0].tensor.clone();
  const opt = new E.SGD(synthetic.learnable, { lr: 1, momentum: 0.5 });
  // The flip strategy this threshold was set with (custom datasets default to no flips).
  const config = dm.schema.parse({ batchReal: 40, dsaStrategy: 'color_crop_cutout_flip_scale_rotate' });
  const losses: number[] = [];
  for (let it = 0; it < 30; it++) {
    const { loss } = dm.step(
      contextWithOptimizer({ dataset: ds, synthetic, gen, model: 'ConvNetW32' }, opt),
      config,
      it,
    );
    losses.push(loss);
  }
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  assert.ok(
    mean(losses.slice(-10)) < 0.7 * mean(losses.slice(0, 10)),
    `loss ${mean(losses.slice(0, 10))} -> ${mean(losses.slice(-10))}`,
  );
  assert.ok(synthetic.parameterization.tensors[0].tensor.sub(start).abs().max().item() > 0.01);
});

test('bad input: unknown method, dataset, model; ipc too large; unwritable output; existing run', () => {
  const unknownMethod = cli(['distill', '--dataset', data, '--method', 'magic', '--ipc', '2']);
  assert.equal(unknownMethod.status, 2);
  assert.match(
    unknownMethod.stderr,
    /unknown method 'magic' \(available: dc, dsa, idc, idc-i, mtt, tesla, ftd, datm, dm, idm, m3d, cafe, haba, dd, kip, rfad, frepo, ncfm; see `distillery methods`\)/,
  );
  const unknownDataset = cli(['distill', '--dataset', 'imagenet-1k', '--out', join(tempDir('x'), 'r')]);
  assert.notEqual(unknownDataset.status, 0);
  assert.match(unknownDataset.stderr, /unknown dataset 'imagenet-1k'/);
  const unknownModel = cli([...BASE, '--model', 'ResNet50', '--out', join(tempDir('x'), 'r')]);
  assert.match(unknownModel.stderr, /unknown model 'ResNet50'/);
  const bigIpc = cli([...BASE, '--ipc', '41', '--out', join(tempDir('x'), 'r')]);
  assert.match(bigIpc.stderr, /--ipc 41 is larger than the smallest class of .* \(40 images\)/);
  // A regular file where a parent directory should be (root ignores permission bits).
  const blocker = join(tempDir('x'), 'file');
  writeFileSync(blocker, '');
  const unwritable = cli([...BASE, '--iterations', '1', '--out', join(blocker, 'run')]);
  assert.equal(unwritable.status, 1);
  assert.match(
    unwritable.stderr,
    /run directory: cannot create directory .*file\/run: .*file is a file, not a directory/,
  );
  const out = join(tempDir('x'), 'r');
  assert.equal(cli([...BASE, '--iterations', '1', '--out', out]).status, 0);
  const again = cli([...BASE, '--iterations', '1', '--out', out]);
  assert.equal(again.status, 2);
  assert.match(again.stderr, /already holds a run: resume it with --resume/);
  const badSet = cli([...BASE, '--set', 'methodConfig.batchReal=-3', '--out', join(tempDir('x'), 'r')]);
  assert.equal(badSet.status, 2);
  assert.match(badSet.stderr, /invalid dm settings: batchReal: Number must be greater than 0/);
});

test('resuming with a different configuration is refused, naming the difference', () => {
  const out = join(tempDir('x'), 'r');
  assert.equal(cli([...BASE, '--iterations', '2', '--out', out]).status, 0);
  const r = cli(['distill', '--resume', out, '--iterations', '5']);
  assert.notEqual(r.status, 0);
  assert.match(
    r.stderr,
    /cannot resume .* with a different configuration: iterations: 2 \(run\) vs 5 \(now\)/,
  );
});

test('a diverging loss stops with the iteration and keeps the last good checkpoint', async () => {
  const ds = loadDataset(data);
  const dir = new RunDir(join(tempDir('nan'), 'run'));
  const config = resolveConfig({
    dataset: data,
    ipc: 2,
    model: 'ConvNetW32',
    iterations: 6,
    checkpointEvery: 2,
    evalRuns: 0,
    optimizer: { lr: 1e38 },
    methodConfig: { batchReal: 10 },
  });
  await assert.rejects(
    () => new Distiller(config, dir).run({ resume: false, dataset: ds }),
    /the dm loss became (NaN|Infinity) at iteration \d+; stopped\. The last good checkpoint/,
  );
  const checkpoint = dir.loadCheckpoint();
  assert.ok(
    checkpoint === null || checkpoint.tensors.images.isfinite().all().item(),
    'no non-finite checkpoint was written',
  );
});

test('report: one self-contained HTML file with the loss curve, evaluation and images', () => {
  const out = join(tempDir('report'), 'r');
  const run = cli([
    ...BASE.filter((a) => a !== '--json'),
    '--iterations',
    '3',
    '--eval-runs',
    '1',
    '--eval-epochs',
    '1',
    '--out',
    out,
  ]);
  assert.equal(run.status, 0, run.stderr);
  assert.match(
    run.stdout,
    /Test accuracy of ConvNetW32 trained on it \(1 network\(s\), 1 epochs, augmentation color_crop_cutout_scale_rotate, (float32|bfloat16)\): [\d.]+% \(n=1\)/,
  );
  assert.match(run.stdout, /Random real subset, same size and protocol: +[\d.]+%/);
  const r = cli(['report', out]);
  assert.equal(r.status, 0, r.stderr);
  const html = readFileSync(join(out, 'report.html'), 'utf8');
  assert.match(html, /<canvas id="loss"/);
  const data = JSON.parse(
    /<script type="application\/json" id="run-data">(.*?)<\/script>/.exec(html)![1],
  ) as {
    loss: [number, number][];
  };
  assert.equal(data.loss.length, 3, 'the loss of every iteration is charted');
  assert.match(html, /<img alt="distilled images, one row per class" src="data:image\/png;base64,/);
  assert.match(html, /random real subset, same size/);
  assert.match(html, /Protocol: 1 epochs, augmentation color_crop_cutout_scale_rotate/);
  assert.doesNotMatch(html, /<script[^>]+src=|<link[^>]+href=/, 'nothing fetched: every script is inline');
});

test('DM batched over classes (chunked real pass) equals the reference per-class loop', () => {
  const ds = loadDataset(data);
  const gen = new E.Generator(4);
  const synthetic = SyntheticSet.create(ds, 3, 'real', gen);
  const config = dm.schema.parse({ batchReal: 20, realChunk: 7, realDtype: 'float32' });
  const state = gen.getState();
  const batched = dm.step(
    { dataset: ds, synthetic, gen, state: new Map(), model: 'ConvNetW32', update: () => {} },
    config,
    0,
  ).loss;

  // The reference structure, replaying the same random stream: network, real batches, draws.
  gen.setState(state);
  const net = createNetwork('ConvNetW32', ds.imageShape, ds.numClasses);
  const params = net.init(gen);
  const real = ds.gather(ds.sampleIndices(20, gen));
  const dsa = new DSA({ strategy: defaultStrategy(ds.name) });
  const draws = dsa.sample(ds.numClasses, gen);
  let loss = 0;
  for (let c = 0; c < ds.numClasses; c++) {
    const r = dsa.apply(real.images.narrow(0, 20 * c, 20), [draws[c]], [20]);
    const s = dsa.apply(synthetic.decode().images.narrow(0, 3 * c, 3), [draws[c]], [3]);
    loss += net.embed(params, r).mean(0).sub(net.embed(params, s).mean(0)).square().sum().item();
  }
  assert.ok(Math.abs(batched - loss) <= 1e-4 * Math.abs(loss), `batched ${batched} vs per-class ${loss}`);
});

test('DM real pass in bfloat16 (channels-last) stays close to float32; auto picks by the CPU', () => {
  assert.equal(
    dm.schema.parse({}).realDtype,
    E.cpuHasNativeBf16() ? 'bfloat16' : 'float32',
    "'auto' resolves when the config is read, so run.json records the choice",
  );
  const ds = loadDataset(data);
  const gen = new E.Generator(6);
  const synthetic = SyntheticSet.create(ds, 3, 'real', gen);
  const start = gen.getState();
  const results = (['float32', 'bfloat16'] as const).map((realDtype) => {
    gen.setState(start);
    let grad: E.Tensor | null = null;
    const update = (grads: (E.Tensor | null)[]) => (grad = E.keep((grads[0] as E.Tensor).clone()));
    const { loss } = dm.step(
      { dataset: ds, synthetic, gen, state: new Map(), model: 'ConvNetW32', update },
      // The stream the tolerances were set with (custom datasets default to no flips).
      dm.schema.parse({ batchReal: 20, realDtype, dsaStrategy: 'color_crop_cutout_flip_scale_rotate' }),
      0,
    );
    return { loss, grad: grad as unknown as E.Tensor };
  });
  const [f32, bf16] = results;
  assert.notEqual(bf16.loss, f32.loss, 'the bfloat16 path ran (its rounding shows in the loss)');
  assert.ok(Math.abs(bf16.loss - f32.loss) < 0.02 * f32.loss, `loss ${bf16.loss} vs ${f32.loss}`);
  const cosine = f32.grad.mul(bf16.grad).sum().item() / (f32.grad.norm().item() * bf16.grad.norm().item());
  assert.ok(cosine > 0.99, `gradient cosine ${cosine}`);
});

test('DM with a batch-norm network (all classes in one batch) runs and gives finite gradients', () => {
  const ds = loadDataset(data);
  const gen = new E.Generator(5);
  const synthetic = SyntheticSet.create(ds, 2, 'noise', gen);
  let finite = false;
  const update = (grads: (E.Tensor | null)[]) =>
    (finite = (grads[0] as E.Tensor).isfinite().all().item() === 1);
  const { loss } = dm.step(
    { dataset: ds, synthetic, gen, state: new Map(), model: 'ConvNetW32BN', update },
    dm.schema.parse({ batchReal: 10 }),
    0,
  );
  assert.ok(Number.isFinite(loss) && loss > 0);
  assert.ok(finite, 'finite gradients');
});

test('Ctrl-C (SIGINT) checkpoints after the current iteration, exits 130, and the run resumes', async () => {
  const out = join(tempDir('sigint'), 'r');
  const child = spawn(
    process.execPath,
    [
      MAIN,
      ...BASE,
      '--iterations',
      '200',
      '--checkpoint-every',
      '100',
      '--set',
      'methodConfig.batchReal=40',
      '--out',
      out,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  child.stdout.on('data', (d) => (stdout += String(d)));
  const metrics = join(out, 'metrics.jsonl');
  while (!existsSync(metrics) || readFileSync(metrics, 'utf8').split('\n').filter(Boolean).length < 3) {
    await new Promise((res) => setTimeout(res, 5));
  }
  child.kill('SIGINT');
  const code = await new Promise((res) => child.once('exit', res));
  assert.equal(code, 130);
  const result = JSON.parse(stdout.trim().split('\n').pop() as string);
  assert.equal(result.interrupted, true);
  assert.equal(result.resume, `distillery distill --resume ${out}`);
  const stoppedAt = new RunDir(out).loadCheckpoint()?.iteration ?? 0;
  assert.ok(
    stoppedAt >= 3 && stoppedAt < 100,
    `checkpoint at iteration ${stoppedAt}, not at a regular checkpoint`,
  );
  const resumed = cli(['distill', '--resume', out, '--iterations', '200', '--json']);
  assert.equal(resumed.status, 0, resumed.stderr);
});

test("the run config evaluates on the references' model and protocol by default (eval mode 'S', DM 'SS'; DC's augmentation)", () => {
  const bn = resolveConfig({ dataset: 'mnist', method: 'dc', model: 'ConvNetBN' });
  assert.equal(bn.evalModel, 'ConvNet');
  assert.equal(bn.evalAugment, 'dc', "main.py evaluates a DC set with get_daparam's augmentation");
  assert.equal(resolveConfig({ dataset: 'mnist', method: 'dsa', model: 'ConvNetBN' }).evalAugment, true);
  assert.equal(
    resolveConfig({ dataset: 'mnist', method: 'mtt', model: 'ConvNetBN', methodConfig: { experts: 'e' } })
      .evalModel,
    'ConvNet',
  );
  // main_DM.py's eval_mode 'SS': the training model itself, batch norm included.
  const dm = resolveConfig({ dataset: 'mnist', method: 'dm', model: 'ConvNetBN' });
  assert.equal(dm.evalModel, 'ConvNetBN');
  assert.equal(dm.evalAugment, true);
  assert.equal(bn.evalEpochs, undefined, 'epochs follow the augmentation (1000 with, 300 without)');
  assert.equal(
    resolveConfig({ dataset: 'mnist', model: 'ConvNetBN', evalModel: 'ConvNetBN' }).evalModel,
    'ConvNetBN',
  );
  assert.throws(() => resolveConfig({ model: 'ConvNetXY' }), /cannot parse 'XY'/);
});

test('a method that passes a gradient count other than synthetic.learnable is stopped with a clear error', async () => {
  const { registerMethod } = await import('../../src/distill/registry.js');
  const { z } = await import('zod');
  registerMethod({
    name: 'two-grads',
    family: 'distribution matching',
    subFamily: 'test',
    summary: 'passes one gradient too many',
    needs: 'nothing',
    schema: z.object({}),
    defaults: {},
    step(ctx) {
      const [images] = ctx.synthetic.learnable;
      ctx.update([E.zerosLike(images), E.zerosLike(images)], 1);
      return { loss: 1 };
    },
  });
  const config = resolveConfig({
    dataset: data,
    method: 'two-grads',
    ipc: 1,
    model: 'ConvNetW8',
    iterations: 1,
    evalRuns: 0,
  });
  const d = new Distiller(config, new RunDir(join(tempDir('two-grads'), 'r')));
  await assert.rejects(
    d.run({ resume: false }),
    /passed 2 gradient\(s\) for the synthetic set's 1 learnable tensor\(s\)/,
  );
});
