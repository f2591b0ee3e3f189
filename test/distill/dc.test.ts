// Gradient matching (DC/DSA): the IPC loop rule, the distances, the second-order
// gradient against finite differences in float64 (with and without a fixed DSA
// draw), batch-norm freezing, and the per-class split against the reference's
// summed loss.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as E from '../../src/engine/index.js';
import { DSA, GROUPS, defaultStrategy, type Group } from '../../src/augment/index.js';
import { loadDataset } from '../../src/data/registry.js';
import { gradientDistance } from '../../src/distill/matching.js';
import {
  classMatchingLoss,
  dc,
  dsa,
  loopsForIpc,
  setBatchNormStatistics,
} from '../../src/distill/methods/dc.js';
import { SyntheticSet } from '../../src/distill/synthetic.js';
import { createNetwork, gradientLeaves, type NetState } from '../../src/models/index.js';
import { tempDir, writeSquaresFile } from '../fixtures.js';

const data = writeSquaresFile({ classes: 3, perClass: 30 });
const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

test('outer/inner loops follow the reference table and interpolate between its IPCs', () => {
  const table: [number, number, number][] = [
    [1, 1, 1],
    [10, 10, 50],
    [20, 20, 25],
    [30, 30, 20],
    [40, 40, 15],
    [50, 50, 10],
  ];
  for (const [ipc, outerLoop, innerLoop] of table)
    assert.deepEqual(loopsForIpc(ipc), { outerLoop, innerLoop });
  assert.deepEqual(loopsForIpc(5), { outerLoop: 5, innerLoop: 23 }); // 1 + 4/9 * 49 = 22.8
  assert.deepEqual(loopsForIpc(15), { outerLoop: 15, innerLoop: 38 }); // 50 - 25/2 = 37.5
  assert.deepEqual(loopsForIpc(100), { outerLoop: 50, innerLoop: 10 });
});

test('gradient distances: hand-computed values; 1-D parameters count for nothing in "ours"', () => {
  const a = E.tensor([
    [1, 0],
    [0, 2],
  ]);
  const b = E.tensor([
    [1, 0],
    [3, 0],
  ]);
  const biasA = E.tensor([5, 6]);
  const biasB = E.tensor([-1, 7]);
  // Rows: identical direction (0) and orthogonal (1); the biases are ignored.
  const ours = gradientDistance([a, biasA], [b, biasB], 'ours').item();
  assert.ok(Math.abs(ours - 1) < 1e-5, `ours ${ours}`);
  // mse over everything: (0)^2+(0)^2+(-3)^2+(2)^2 + 6^2 + 1^2 = 50.
  assert.ok(Math.abs(gradientDistance([a, biasA], [b, biasB], 'mse').item() - 50) < 1e-4);
  // cos over everything: a.b = 1 + 0 + 0 + 0 - 5 + 42 = 38.
  const na = Math.sqrt(1 + 4 + 25 + 36);
  const nb = Math.sqrt(1 + 9 + 1 + 49);
  const cos = gradientDistance([a, biasA], [b, biasB], 'cos').item();
  assert.ok(Math.abs(cos - (1 - 38 / (na * nb + 1e-6))) < 1e-5, `cos ${cos}`);
  // Conv-shaped gradients are compared per output channel.
  const w = E.randn([4, 3, 3, 3], { generator: new E.Generator(1) });
  assert.ok(Math.abs(gradientDistance([w], [w.mul(2)], 'ours').item()) < 1e-5);
  assert.ok(Math.abs(gradientDistance([w], [w.neg()], 'ours').item() - 8) < 1e-4);
});

/** A tiny network in float64 with a real batch and its labels, for finite differences. */
function tinySetup(model: string, seed: number) {
  const gen = new E.Generator(seed);
  const net = createNetwork(model, [1, 8, 8], 3);
  const state32 = net.init(gen);
  const toDouble = (m: Map<string, E.Tensor>) =>
    new Map([...m].map(([k, t]) => [k, t.double().requiresGrad_(t.requiresGrad)]));
  const state: NetState = { params: toDouble(state32.params), buffers: toDouble(state32.buffers) };
  for (const p of state.params.values()) p.requiresGrad_();
  const real = {
    images: E.randn([6, 1, 8, 8], { dtype: 'float64', generator: gen }),
    labels: E.full([6], 1, { dtype: 'int64' }),
  };
  const syn = E.randn([2, 1, 8, 8], { dtype: 'float64', generator: gen });
  return { net, state, real, syn, synLabels: E.full([2], 1, { dtype: 'int64' }), gen };
}

for (const distance of ['ours', 'mse', 'cos'] as const) {
  test(`second-order matching gradient (${distance}) equals central finite differences in float64`, () => {
    const { net, state, real, syn, synLabels } = tinySetup('ConvNetW6D2', 3);
    const result = E.gradcheck(
      (x) => classMatchingLoss(net, state, real, { images: x, labels: synLabels }, { distance, train: true }),
      [syn],
    );
    assert.ok(result.relError < 1e-5, `relative error ${result.relError}`);
    assert.ok(result.ok, JSON.stringify(result.worst));
  });
}

test('the matching gradient with a fixed Siamese DSA draw equals finite differences, for every group', () => {
  const { net, state, real, syn, synLabels, gen } = tinySetup('ConvNetW6D2', 4);
  for (const group of GROUPS) {
    const aug = new DSA({ strategy: group });
    const draw = { ...aug.sample(1, gen)[0], group: group as Group };
    const result = E.gradcheck(
      (x) =>
        classMatchingLoss(
          net,
          state,
          real,
          { images: x, labels: synLabels },
          { distance: 'ours', train: true, augment: { dsa: aug, draw } },
        ),
      [syn],
    );
    assert.ok(result.relError < 1e-5, `${group}: relative error ${result.relError}`);
  }
});

test('batch norm: statistics come from a real batch and the matching step leaves them frozen', () => {
  const ds = loadDataset(data);
  const gen = new E.Generator(5);
  const net = createNetwork('ConvNetW8BN', ds.imageShape, ds.numClasses);
  const state = net.init(gen);
  for (const p of state.params.values()) p.requiresGrad_();
  const snapshot = () => [...state.buffers.values()].map((t) => t.clone());
  const fresh = snapshot();
  setBatchNormStatistics(net, state, ds, 4, gen);
  const set = snapshot();
  assert.ok(
    set.some((t, i) => t.sub(fresh[i]).abs().max().item() > 1e-4),
    'the real batch sets the running statistics',
  );
  const real = ds.gather(ds.sampleIndices(8, gen, [0]));
  const syn = E.randn([2, ...ds.imageShape], { generator: gen }).requiresGrad_();
  const loss = classMatchingLoss(
    net,
    state,
    real,
    { images: syn, labels: E.zeros([2], { dtype: 'int64' }) },
    { distance: 'ours', train: false },
  );
  E.grad(loss, [syn]);
  snapshot().forEach((t, i) => assert.equal(t.sub(set[i]).abs().max().item(), 0, 'running stats unchanged'));
});

test('the per-class split equals the gradient of the reference summed loss (replayed random stream)', () => {
  const ds = loadDataset(data);
  const gen = new E.Generator(6);
  const synthetic = SyntheticSet.create(ds, 2, 'real', gen);
  const config = dsa.schema.parse({ batchReal: 10, outerLoop: 1, realDtype: 'float32' });
  const before = gen.getState();
  let ours: E.Tensor | null = null;
  dsa.step(
    {
      dataset: ds,
      synthetic,
      gen,
      state: new Map(),
      model: 'ConvNetW8',
      update: (g) => (ours = (g[0] as E.Tensor).keep()),
    },
    config,
    0,
  );

  // The reference structure: one network, then per class (real batch, Siamese draw), the loss summed, one backward.
  gen.setState(before);
  const net = createNetwork('ConvNetW8', ds.imageShape, ds.numClasses);
  const state = net.init(gen);
  for (const p of state.params.values()) p.requiresGrad_();
  const indices = ds.sampleIndices(10, gen);
  const aug = new DSA({ strategy: defaultStrategy(ds.name) });
  const draws = aug.sample(ds.numClasses, gen);
  const images = synthetic.decode().images;
  let total: E.Tensor | null = null;
  for (let c = 0; c < ds.numClasses; c++) {
    const loss = classMatchingLoss(
      net,
      state,
      ds.gather(indices.slice(10 * c, 10 * c + 10)),
      { images: images.narrow(0, 2 * c, 2), labels: E.full([2], c, { dtype: 'int64' }) },
      { distance: 'ours', train: true, augment: { dsa: aug, draw: draws[c] } },
    );
    total = total ? total.add(loss) : loss;
  }
  const [reference] = E.grad(total as unknown as E.Tensor, [images]);
  assert.ok(ours, 'the step applied an update');
  const diff = (ours as E.Tensor).sub(reference).abs().max().item();
  assert.ok(diff <= 1e-5 * reference.abs().max().item(), `max difference ${diff}`);
});

test('real gradients in bfloat16 (channels-last copy of the network) give nearly the float32 matching loss and image gradient', () => {
  assert.equal(
    dc.schema.parse({}).realDtype,
    E.cpuHasNativeBf16() ? 'bfloat16' : 'float32',
    "'auto' (the default) resolves when the config is read",
  );
  assert.equal(dc.schema.parse({ realDtype: 'float32' }).realDtype, 'float32');
  const ds = loadDataset(data);
  const gen = new E.Generator(8);
  const net = createNetwork('ConvNetW32', ds.imageShape, ds.numClasses);
  const state = net.init(gen);
  for (const p of state.params.values()) p.requiresGrad_();
  const low = gradientLeaves(state, 'bfloat16');
  const real = ds.gather(ds.sampleIndices(20, gen));
  const images = E.randn([2, ...ds.imageShape], { generator: gen }).requiresGrad_();
  const syn = { images, labels: E.full([2], 0, { dtype: 'int64' }) };
  const realClass0 = { images: real.images.narrow(0, 0, 20), labels: real.labels.narrow(0, 0, 20) };
  const [f32, bf16] = [undefined, low].map((realState) => {
    const loss = classMatchingLoss(net, state, realClass0, syn, { distance: 'ours', train: true, realState });
    return { loss: loss.item(), grad: E.grad(loss, [images])[0] };
  });
  assert.notEqual(bf16.loss, f32.loss, 'the bfloat16 path ran (its rounding shows in the loss)');
  assert.ok(Math.abs(bf16.loss - f32.loss) < 0.02 * f32.loss, `loss ${bf16.loss} vs ${f32.loss}`);
  const cosine = f32.grad.mul(bf16.grad).sum().item() / (f32.grad.norm().item() * bf16.grad.norm().item());
  assert.ok(cosine > 0.98, `image-gradient cosine ${cosine}`);
});

// From noise both must make progress (from real images this toy set is already matched to within noise).
test('DC and DSA from noise lower the matching loss over a few iterations', () => {
  const ds = loadDataset(data);
  for (const method of [dc, dsa]) {
    const gen = new E.Generator(7);
    const synthetic = SyntheticSet.create(ds, 1, 'noise', gen);
    const start = synthetic.parameterization.tensors[0].tensor.clone();
    const opt = new E.SGD(synthetic.learnable, { lr: 0.1, momentum: 0.5 });
    const config = method.schema.parse({ batchReal: 20 });
    const losses: number[] = [];
    const update = (g: (E.Tensor | null)[]) => {
      opt.step(g);
      for (const t of g) t?.dispose();
    };
    for (let it = 0; it < 24; it++)
      losses.push(
        method.step(
          { dataset: ds, synthetic, gen, state: new Map(), model: 'ConvNetW16', update },
          config,
          it,
        ).loss,
      );
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    assert.ok(
      mean(losses.slice(-8)) < mean(losses.slice(0, 8)),
      `${method.name}: loss ${mean(losses.slice(0, 8))} -> ${mean(losses.slice(-8))}`,
    );
    assert.ok(synthetic.parameterization.tensors[0].tensor.sub(start).abs().max().item() > 1e-3);
  }
});

test('IPC 2 runs its outer loop with inner training, on a batch-norm network too', () => {
  const ds = loadDataset(data);
  for (const model of ['ConvNetW8', 'ConvNetW8BN']) {
    const gen = new E.Generator(8);
    const synthetic = SyntheticSet.create(ds, 2, 'real', gen);
    let updates = 0;
    const update = (g: (E.Tensor | null)[]) => {
      updates++;
      for (const t of g) t?.dispose();
    };
    const { loss } = dsa.step(
      { dataset: ds, synthetic, gen, state: new Map(), model, update },
      dsa.schema.parse({ batchReal: 8, innerLoop: 2 }),
      0,
    );
    assert.equal(updates, loopsForIpc(2).outerLoop, `${model}: one image update per outer-loop step`);
    assert.ok(Number.isFinite(loss) && loss > 0, `${model}: loss ${loss}`);
  }
});

test('CLI: `distill --method dc` runs with the method defaults; `methods` lists DC and DSA under gradient matching', () => {
  const out = join(tempDir('dc-cli'), 'run');
  const args = ['distill', '--dataset', data, '--method', 'dc', '--ipc', '1', '--iterations', '2'];
  const run = spawnSync(
    process.execPath,
    [MAIN, ...args, '--model', 'ConvNetW8', '--eval-runs', '0', '--out', out, '--json'],
    { encoding: 'utf8' },
  );
  assert.equal(run.status, 0, run.stderr);
  const record = JSON.parse(readFileSync(join(out, 'run.json'), 'utf8')) as {
    config: Record<string, unknown>;
  };
  assert.equal(record.config.init, 'noise', 'DC starts from noise');
  assert.deepEqual(record.config.optimizer, { kind: 'sgd', lr: 0.1, momentum: 0.5 });
  assert.ok(existsSync(join(out, 'artifact', 'synthetic.safetensors')));
  const methods = spawnSync(process.execPath, [MAIN, 'methods'], { encoding: 'utf8' }).stdout;
  assert.match(methods, /single step: gradient matching \(DC, DSA, IDC\)\n\s+\* dc: .*\n.*\n\s+\* dsa: /);
});
