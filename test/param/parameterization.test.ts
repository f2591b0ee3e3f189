// Parameterizations: IDC multi-formation and HaBa's hallucinator against fixtures from the official
// code (test/fixtures/reference/generate.py), LinBa's budget rule, gradients through every decoder
// (first and second order, and trajectory matching) against finite differences in float64, and
// clear errors for settings that do not fit the image or the storage budget.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as E from '../../src/engine/index.js';
import { loadDataset } from '../../src/data/registry.js';
import { resolveConfig } from '../../src/distill/config.js';
import { SyntheticSet } from '../../src/distill/synthetic.js';
import { classMatchingLoss } from '../../src/distill/methods/dc.js';
import { idcDistance, matchedParams } from '../../src/distill/methods/idc.js';
import { unrolledLoss, type TrajectoryProblem } from '../../src/distill/methods/mtt.js';
import { createNetwork, flattenParams, paramLayout } from '../../src/models/index.js';
import {
  getParameterizationKind,
  habaBases,
  linbaPerClass,
  multiFormationDecode,
  multiFormationEncode,
  resolveParameterization,
  type Parameterization,
  type ShapeInfo,
} from '../../src/param/index.js';
import { writeSquaresFile } from '../fixtures.js';
import { assertAllClose, referenceFixture, withWeights } from '../helpers.js';

const MNIST: ShapeInfo = { imageShape: [1, 28, 28], classes: 10, ipc: 1 };

test('IDC multi-formation equals the reference: init (mix), decode_zoom per class, and its gradient', () => {
  const f = referenceFixture('idc');
  const [classes, ipc, factor] = ['classes', 'ipc', 'factor'].map((k) => Number(f.meta[k]));
  const init = f.get('init');
  const per = ipc * factor * factor;
  const stored = E.cat(
    Array.from({ length: classes }, (_, c) => multiFormationEncode(init.narrow(0, c * per, per), factor)),
    0,
  );
  assertAllClose(stored, f.get('stored'), 0, 'stored images after init (nearest-neighbour tiles)');
  const shape = { imageShape: [1, 28, 28] as [number, number, number], classes, ipc };
  const { kind, settings } = resolveParameterization({ kind: 'idc', factor }, shape);
  const p = kind.restore(shape, settings, { stored: f.get('stored').clone() });
  const decoded = p.decode();
  assertAllClose(decoded, f.get('decoded'), 1e-6, 'decoded images (tile-major per class)');
  const [g] = E.grad(decoded.mul(f.get('v')).sum(), [p.tensors[0].tensor]);
  assertAllClose(g, f.get('decode.grad'), 1e-5, 'gradient through the decode');
});

test("IDC's matching loss (conv weights only; l1 / mse / cos) and its gradient to the stored images equal matchloss", () => {
  const f = referenceFixture('idc');
  const [classes, ipc, factor] = ['classes', 'ipc', 'factor'].map((k) => Number(f.meta[k]));
  const net = createNetwork(f.meta.model, [1, 28, 28], classes);
  const state = withWeights(net, f.get);
  for (const p of state.params.values()) p.requiresGrad_();
  const real = f.get('real');
  const nReal = real.size(0) / classes;
  const per = ipc * factor * factor;
  for (const metric of ['l1', 'mse', 'cos'] as const) {
    const stored = f.get('stored').clone().requiresGrad_();
    const decoded = E.cat(
      Array.from({ length: classes }, (_, c) => multiFormationDecode(stored.narrow(0, c * ipc, ipc), factor)),
      0,
    );
    let loss = E.zeros([]);
    for (let c = 0; c < classes; c++) {
      const params = matchedParams(state);
      const lossOn = (x: E.Tensor, n: number) =>
        E.nn.crossEntropy(net.forward(state, x, { train: true }), E.full([n], c, { dtype: 'int64' }));
      const gReal = E.grad(lossOn(real.narrow(0, c * nReal, nReal), nReal), params).map((g) => g.detach());
      const gSyn = E.grad(lossOn(decoded.narrow(0, c * per, per), per), params, { createGraph: true });
      loss = loss.add(idcDistance(gSyn, gReal, metric));
    }
    assertAllClose(loss, f.get(`${metric}.loss`), 1e-5, `${metric} loss`);
    assertAllClose(E.grad(loss, [stored])[0], f.get(`${metric}.grad`), 1e-4, `${metric} gradient`);
  }
});

test("HaBa's hallucinator equals the reference StyleTranslator: output and gradients to bases and weights", () => {
  const f = referenceFixture('haba');
  const shape = { imageShape: [1, 28, 28] as [number, number, number], classes: 4, ipc: 9 };
  const settings = { hallucinators: 1, kernel: 3, bases: 1 };
  const kind = getParameterizationKind('haba');
  const parts = ['encWeight', 'encBias', 'scale', 'shift', 'decWeight', 'decBias'];
  const tensors: Record<string, E.Tensor> = { bases: f.get('bases').clone() };
  for (const p of parts) tensors[`h0.${p}`] = f.get(`h.${p}`).clone();
  const p = kind.restore(shape, settings, tensors);
  const out = p.decode();
  assertAllClose(out, f.get('out'), 1e-5, 'hallucinated images');
  const leaves = p.tensors.map((t) => t.tensor);
  const grads = E.grad(out.mul(f.get('v')).sum(), leaves);
  assertAllClose(grads[0], f.get('grad.bases'), 1e-5, 'gradient to the bases');
  parts.forEach((name, i) =>
    assertAllClose(grads[i + 1], f.get(`grad.${name}`), 1e-4, `gradient to ${name}`),
  );
});

test("LinBa's images per class follow the reference's budget rule; HaBa's bases fill what the hallucinators leave", () => {
  // utils/Img_per_Cls_budget.py: floor((IPC*C*H*W*K - n_basis*C*H*W/ds^2) / (K*n_basis)).
  assert.equal(linbaPerClass(MNIST, { bases: 16, downsample: 2 }), 29);
  assert.equal(
    linbaPerClass({ imageShape: [3, 32, 32], classes: 10, ipc: 1 }, { bases: 16, downsample: 2 }),
    115,
  );
  // 5 hallucinators of 1x28x28 take 5 * (2 * 10 + 2 * 26 * 26) = 6860 floats; 10 x 10 images hold 78400.
  assert.equal(habaBases({ ...MNIST, ipc: 10 }, { hallucinators: 5, kernel: 3 }), 9);
});

test('bad parameterization settings are clear errors naming what fits', () => {
  const fit = (config: Record<string, unknown>, shape: ShapeInfo) =>
    resolveParameterization({ kind: 'pixels', ...config }, shape);
  assert.throws(
    () => fit({ kind: 'idc', factor: 3 }, MNIST),
    /idc factor 3 does not divide the image size 28x28: choose a factor that divides both \(e\.g\. 1, 2, 4, 7\)/,
  );
  assert.throws(
    () => fit({ kind: 'linba', bases: 64, downsample: 1 }, MNIST),
    /linba with 64 bases \(downsample 1\) needs .* over the budget of 10 x 1 images \(7840 floats\)/,
  );
  assert.throws(
    () => fit({ kind: 'haba' }, MNIST),
    /haba with 5 hallucinators \(1372 floats each\) does not fit the budget of 10 x 1 images/,
  );
  assert.throws(
    () => fit({ kind: 'haba', bases: 10 }, { ...MNIST, ipc: 10 }),
    /and 10 bases per class does not fit/,
  );
  assert.throws(() => fit({ kind: 'idc', factors: 2 }, MNIST), /invalid idc settings: .*factors/);
  assert.throws(
    () => fit({ kind: 'wavelets' }, MNIST),
    /unknown parameterization 'wavelets' \(available: pixels, idc, linba, haba\)/,
  );
  assert.throws(
    () => resolveConfig({ method: 'dm', parameterization: { kind: 'idc', factor: 0 } }),
    /invalid idc settings: factor/,
  );
  assert.throws(
    () => resolveConfig({ method: 'dm', labels: { learn: true } }),
    /dm's objective does not depend on the labels/,
  );
});

test('an IDC set with factor 2 at IPC 10 decodes to 40 images per class, each class its own labels', () => {
  const ds = loadDataset(writeSquaresFile({ classes: 3, perClass: 40, size: 8 }));
  const set = SyntheticSet.create(ds, 10, 'real', new E.Generator(0), {
    parameterization: { kind: 'idc', factor: 2 },
  });
  const { images, labels } = set.decode();
  assert.equal(set.decodedPerClass, 40);
  assert.deepEqual(images.shape, [120, 1, 8, 8]);
  assert.deepEqual(
    labels.toNumbers(),
    [0, 1, 2].flatMap((c) => new Array<number>(40).fill(c)),
  );
  assert.deepEqual(set.groups.images[0].shape, [30, 1, 8, 8], 'storage: 10 images per class');
  const storage = set.storage(ds.imageShape);
  assert.equal(storage.imagesEquivalent, 30);
  assert.equal(storage.budgetImages, 30);
});

/** The parameterization rebuilt from float64 copies of `tensors` (what gradcheck perturbs). */
function double(kindName: string, settings: Record<string, unknown>, shape: ShapeInfo, gen: E.Generator) {
  const { kind, settings: s } = resolveParameterization({ kind: kindName, ...settings }, shape);
  const per = kind.initImagesPerClass(shape, s);
  const init = E.randn([shape.classes * per, ...shape.imageShape], { generator: gen });
  const p = kind.create(shape, s, init, gen);
  const names = p.tensors.map((t) => t.name);
  const values = p.tensors.map((t) => t.tensor.detach().double());
  const rebuild = (x: E.Tensor[]): Parameterization =>
    kind.restore(shape, s, Object.fromEntries(names.map((n, i) => [n, x[i]])));
  return { values, rebuild };
}

const DECODERS: [string, Record<string, unknown>, ShapeInfo][] = [
  ['idc', { factor: 2 }, { imageShape: [1, 6, 6], classes: 2, ipc: 1 }],
  ['linba', { bases: 3, downsample: 2 }, { imageShape: [1, 6, 6], classes: 2, ipc: 1 }],
  ['haba', { hallucinators: 2, kernel: 3 }, { imageShape: [1, 6, 6], classes: 2, ipc: 3 }],
];

for (const [kind, settings, shape] of DECODERS) {
  test(`${kind}: decode, second-order gradient matching and unrolled trajectory matching through it equal finite differences (float64)`, () => {
    const gen = new E.Generator(21);
    const { values, rebuild } = double(kind, settings, shape, gen);
    const first = E.gradcheck((...x) => rebuild(x).decode(), values);
    assert.ok(first.relError < 1e-6, `decode: relative error ${first.relError}`);

    // Second order (DC/IDC): d(grad CE(decode(x)), g_real) differentiated to the stored tensors.
    const net = createNetwork('ConvNetW4D1', shape.imageShape, shape.classes);
    const toDouble = (s: ReturnType<typeof net.init>) => ({
      params: new Map([...s.params].map(([k, t]) => [k, t.double().requiresGrad_()])),
      buffers: new Map<string, E.Tensor>(),
    });
    const state = toDouble(net.init(gen));
    const per = rebuild(values).decodedPerClass;
    const real = {
      images: E.randn([4, ...shape.imageShape], { dtype: 'float64', generator: gen }),
      labels: E.zeros([4], { dtype: 'int64' }),
    };
    const matching = (...x: E.Tensor[]) => {
      const images = rebuild(x).decode().narrow(0, 0, per);
      return classMatchingLoss(
        net,
        state,
        real,
        { images, labels: E.zeros([per], { dtype: 'int64' }) },
        { distance: 'ours', train: true },
      );
    };
    const second = E.gradcheck(matching, values);
    assert.ok(second.relError < 1e-5, `gradient matching: relative error ${second.relError}`);

    // Trajectory matching (MTT, unrolled): 2 student steps on the decoded set.
    const start = flattenParams(toDouble(net.init(gen)));
    const target = start.add(E.randn(start.shape, { dtype: 'float64', generator: gen }).mul(0.05));
    const m = shape.classes * per;
    const labels = E.arange(shape.classes).unsqueeze(1).expand(shape.classes, per).flatten();
    const problem = (x: E.Tensor[]): TrajectoryProblem => ({
      net,
      layout: paramLayout(toDouble(net.init(new E.Generator(0)))),
      start,
      target,
      images: rebuild(x).decode(),
      labels,
      lr: E.tensor(0.05, { dtype: 'float64', shape: [] }),
      steps: [0, 1].map(() => ({ indices: E.randperm(m, { generator: new E.Generator(3) }), draws: null })),
      dsa: null,
    });
    const trajectory = E.gradcheck((...x) => unrolledLoss(problem(x)), values);
    assert.ok(trajectory.relError < 1e-5, `trajectory matching: relative error ${trajectory.relError}`);
  });
}
