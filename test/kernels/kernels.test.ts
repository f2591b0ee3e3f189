// Infinite-width kernels and kernel ridge regression: closed forms for one layer, Monte-Carlo
// estimates from wide random networks (the kernels are the limits of their feature inner products
// and gradient inner products), positive semi-definiteness, KRR against the primal ridge solution,
// clear errors, and gradients of the KRR loss against finite differences in float64.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as E from '../../src/engine/index.js';
import {
  KernelError,
  centredOneHot,
  kernelMatrix,
  krrPredict,
  krrSolve,
  labelSolve,
  type KernelSpec,
} from '../../src/kernels/index.js';
import { assertClose } from '../helpers.js';

const f64 = { dtype: 'float64' as const };
const randn = (gen: E.Generator, ...shape: number[]) => E.randn(shape, { ...f64, generator: gen });

/** E[relu(u) relu(v)] for (u, v) ~ N(0, [[a, c], [c, b]]) (Cho & Saul's arc-cosine kernel of degree 1). */
function arccos1(a: number, b: number, c: number): number {
  const t = Math.acos(Math.max(-1, Math.min(1, c / Math.sqrt(a * b))));
  return (Math.sqrt(a * b) * (Math.sin(t) + (Math.PI - t) * Math.cos(t))) / (2 * Math.PI);
}
/** E[relu'(u) relu'(v)] = (pi - t) / (2 pi). */
function arccos0(a: number, b: number, c: number): number {
  const t = Math.acos(Math.max(-1, Math.min(1, c / Math.sqrt(a * b))));
  return (Math.PI - t) / (2 * Math.PI);
}

test('fc kernel, one hidden layer: NNGP and NTK equal the closed forms', () => {
  const gen = new E.Generator(1);
  const x = randn(gen, 4, 1, 2, 3); // d = 6
  const spec: KernelSpec = { arch: 'fc', depth: 1, wStd: 1.3, bStd: 0.2, type: 'nngp' };
  const nngp = kernelMatrix(spec, x, x).toNumbers();
  const ntk = kernelMatrix({ ...spec, type: 'ntk' }, x, x).toNumbers();
  const rows = x.flatten(1).toList() as number[][];
  const [w2, b2] = [1.3 ** 2, 0.2 ** 2];
  const dot = (u: number[], v: number[]) => u.reduce((s, ui, k) => s + ui * v[k], 0) / u.length;
  for (let i = 0; i < 4; i++)
    for (let j = 0; j < 4; j++) {
      const [a, b, c] = [dot(rows[i], rows[i]), dot(rows[j], rows[j]), dot(rows[i], rows[j])].map(
        (v) => w2 * v + b2,
      );
      const sigma = w2 * arccos1(a, b, c) + b2;
      assertClose(nngp[i * 4 + j], sigma, 1e-7, `nngp[${i},${j}]`);
      assertClose(ntk[i * 4 + j], sigma + w2 * c * arccos0(a, b, c), 1e-6, `ntk[${i},${j}]`);
    }
});

/** A wide random fc ReLU network in the ntk parameterization (standard-normal parameters), output width 1. */
function wideFc(gen: E.Generator, d: number, width: number, depth: number, w: number, b: number) {
  const layers: { W: E.Tensor; b: E.Tensor }[] = [];
  let fanIn = d;
  for (let l = 0; l <= depth; l++) {
    const out = l === depth ? 1 : width;
    layers.push({ W: randn(gen, fanIn, out).requiresGrad_(), b: randn(gen, out).requiresGrad_() });
    fanIn = out;
  }
  const forward = (x: E.Tensor, readoutInput = false) => {
    let h = x.flatten(1);
    for (let l = 0; l <= depth; l++) {
      if (l === depth && readoutInput) return h;
      const z = h
        .matmul(layers[l].W)
        .mul(w / Math.sqrt(h.size(1)))
        .add(layers[l].b.mul(b));
      h = l === depth ? z : z.relu();
    }
    return h;
  };
  return { forward, params: layers.flatMap((l) => [l.W, l.b]) };
}

/** The empirical NTK sum_p df(x_i)/dp df(x_j)/dp of a scalar-output network, by autograd. */
function empiricalNtk(f: (x: E.Tensor) => E.Tensor, params: E.Tensor[], x: E.Tensor): number[][] {
  const n = x.size(0);
  const jac = [...Array(n).keys()].map((i) =>
    E.cat(
      E.grad(f(x.narrow(0, i, 1)).sum(), params).map((g) => g.flatten()),
      0,
    ),
  );
  return jac.map((a) => jac.map((b) => a.mul(b).sum().item()));
}

test('fc kernel, depth 2: NNGP and NTK match Monte-Carlo estimates from wide random networks', () => {
  const gen = new E.Generator(2);
  const x = randn(gen, 3, 5);
  const spec: KernelSpec = { arch: 'fc', depth: 2, wStd: Math.SQRT2, bStd: 0.3, type: 'nngp' };
  const nngp = kernelMatrix(spec, x, x).toNumbers();
  const ntk = kernelMatrix({ ...spec, type: 'ntk' }, x, x).toNumbers();
  const width = 4096;
  const nets = 4;
  const mcNngp = new Array<number>(9).fill(0);
  const mcNtk = new Array<number>(9).fill(0);
  for (let r = 0; r < nets; r++)
    E.tidy(() => {
      const net = wideFc(gen, 5, width, 2, spec.wStd, spec.bStd);
      // NNGP: the readout's covariance given the last hidden layer, w^2 mean_i h_i h'_i + b^2.
      const h = E.noGrad(() => net.forward(x, true));
      const cov = h
        .matmul(h.t())
        .mul(spec.wStd ** 2 / width)
        .add(spec.bStd ** 2)
        .toNumbers();
      const k = empiricalNtk((xi) => net.forward(xi), net.params, x).flat();
      for (let i = 0; i < 9; i++) {
        mcNngp[i] += cov[i] / nets;
        mcNtk[i] += k[i] / nets;
      }
    });
  for (let i = 0; i < 9; i++) {
    assert.ok(
      Math.abs(mcNngp[i] - nngp[i]) < 0.03 * Math.abs(nngp[i]) + 0.01,
      `nngp[${i}] ${nngp[i]} vs MC ${mcNngp[i]}`,
    );
    assert.ok(
      Math.abs(mcNtk[i] - ntk[i]) < 0.04 * Math.abs(ntk[i]) + 0.01,
      `ntk[${i}] ${ntk[i]} vs MC ${mcNtk[i]}`,
    );
  }
});

/** A wide random conv ReLU network (3x3 SAME convolutions, ntk parameterization, flatten readout). */
function wideConv(
  gen: E.Generator,
  c: number,
  hw: number,
  width: number,
  depth: number,
  w: number,
  b: number,
) {
  const convs: { W: E.Tensor; b: E.Tensor }[] = [];
  let cin = c;
  for (let l = 0; l < depth; l++) {
    convs.push({ W: randn(gen, width, cin, 3, 3).requiresGrad_(), b: randn(gen, width).requiresGrad_() });
    cin = width;
  }
  const readout = { W: randn(gen, width * hw * hw, 1).requiresGrad_(), b: randn(gen, 1).requiresGrad_() };
  const features = (x: E.Tensor) => {
    let h = x;
    for (const layer of convs) {
      const fanIn = h.size(1) * 9;
      h = E.nn.conv2d(h, layer.W.mul(w / Math.sqrt(fanIn)), layer.b.mul(b), { padding: 1 }).relu();
    }
    return h.flatten(1);
  };
  const forward = (x: E.Tensor) => {
    const h = features(x);
    return h
      .matmul(readout.W)
      .mul(w / Math.sqrt(h.size(1)))
      .add(readout.b.mul(b));
  };
  return { features, forward, params: [...convs.flatMap((l) => [l.W, l.b]), readout.W, readout.b] };
}

test('conv kernel (flatten readout): NNGP and NTK match Monte-Carlo estimates from wide random ConvNets', () => {
  const gen = new E.Generator(3);
  const x = randn(gen, 3, 2, 4, 4);
  const spec: KernelSpec = { arch: 'conv', depth: 2, wStd: Math.SQRT2, bStd: 0.2, type: 'nngp' };
  const nngp = kernelMatrix(spec, x, x).toNumbers();
  const ntk = kernelMatrix({ ...spec, type: 'ntk' }, x, x).toNumbers();
  const [width, nets] = [512, 4];
  const mcNngp = new Array<number>(9).fill(0);
  const mcNtk = new Array<number>(9).fill(0);
  for (let r = 0; r < nets; r++)
    E.tidy(() => {
      const net = wideConv(gen, 2, 4, width, 2, spec.wStd, spec.bStd);
      const h = E.noGrad(() => net.features(x));
      const cov = h
        .matmul(h.t())
        .mul(spec.wStd ** 2 / h.size(1))
        .add(spec.bStd ** 2)
        .toNumbers();
      const k = empiricalNtk(net.forward, net.params, x).flat();
      for (let i = 0; i < 9; i++) {
        mcNngp[i] += cov[i] / nets;
        mcNtk[i] += k[i] / nets;
      }
    });
  for (let i = 0; i < 9; i++) {
    assert.ok(
      Math.abs(mcNngp[i] - nngp[i]) < 0.04 * Math.abs(nngp[i]) + 0.01,
      `nngp[${i}] ${nngp[i]} vs MC ${mcNngp[i]}`,
    );
    assert.ok(
      Math.abs(mcNtk[i] - ntk[i]) < 0.05 * Math.abs(ntk[i]) + 0.01,
      `ntk[${i}] ${ntk[i]} vs MC ${mcNtk[i]}`,
    );
  }
});

test('kernel matrices of a batch with itself are symmetric positive semi-definite, K(X, Y) = K(Y, X)^T', () => {
  const gen = new E.Generator(4);
  const x = randn(gen, 6, 1, 5, 5);
  const y = randn(gen, 3, 1, 5, 5);
  for (const arch of ['fc', 'conv'] as const)
    for (const type of ['ntk', 'nngp'] as const) {
      const spec: KernelSpec = { arch, depth: 2, wStd: Math.SQRT2, bStd: 0.1, type };
      const k = kernelMatrix(spec, x, x);
      assertClose(k, k.t().contiguous().toNumbers(), 1e-12, `${arch} ${type} symmetry`);
      const smallest = E.linalg.eigh(k).eigenvalues.toNumbers()[0];
      assert.ok(smallest > -1e-10, `${arch} ${type}: smallest eigenvalue ${smallest}`);
      assertClose(kernelMatrix(spec, x, y), kernelMatrix(spec, y, x).t().contiguous().toNumbers(), 1e-12);
    }
});

test('krrPredict equals the primal ridge solution for a linear kernel; labelSolve fits the targets better', () => {
  const gen = new E.Generator(5);
  const xs = randn(gen, 5, 3);
  const xt = randn(gen, 8, 3);
  const ys = randn(gen, 5, 2);
  const kss = xs.matmul(xs.t());
  const reg = 0.1;
  const lambda = (reg * kss.diagonal().sum().item()) / 5;
  const pred = krrPredict(xt.matmul(xs.t()), kss, ys, reg);
  // Push-through identity: X_t X_s^T (X_s X_s^T + l I)^-1 Y = X_t (X_s^T X_s + l I)^-1 X_s^T Y.
  const primal = xt.matmul(
    E.linalg.solve(
      xs
        .t()
        .matmul(xs)
        .add(E.eye(3, 3, f64).mul(lambda)),
      xs.t().matmul(ys),
    ),
  );
  assertClose(pred, primal.toNumbers(), 1e-10, 'prediction');
  // A tiny ridge interpolates the support labels (here with a full-rank kernel).
  const spec: KernelSpec = { arch: 'fc', depth: 1, wStd: Math.SQRT2, bStd: 0.1, type: 'ntk' };
  const k = kernelMatrix(spec, xs, xs);
  assertClose(krrPredict(k, k, ys, 1e-10), ys.toNumbers(), 1e-6, 'interpolation');
  const yt = randn(gen, 8, 2);
  const kts = kernelMatrix(spec, xt, xs);
  // With a vanishing ridge the label solve is the least-squares optimum of the KRR fit.
  const err = (y: E.Tensor) => krrPredict(kts, k, y, 1e-12).sub(yt).square().sum().item();
  const solved = labelSolve(kts, k, yt, 1e-12);
  assert.ok(err(solved) < err(ys), `label solve ${err(solved)} vs ${err(ys)}`);
  // It is the least-squares optimum: the loss's gradient in the labels vanishes there.
  const y = solved.detach().requiresGrad_();
  const g = E.grad(krrPredict(kts, k, y, 1e-12).sub(yt).square().sum(), [y])[0];
  assert.ok(g.abs().max().item() < 1e-7, `gradient at the label solve ${g.abs().max().item()}`);
});

test('a kernel matrix that is not positive definite is a clear error, never NaN', () => {
  const zeros = E.zeros([3, 3], f64);
  assert.throws(
    () => krrSolve(zeros, E.ones([3, 1], f64), 0),
    (e: Error) => e instanceof KernelError && /raise the regularisation/.test(e.message),
  );
  const nan = E.full([2, 2], Number.NaN, f64);
  assert.throws(() => krrSolve(nan, E.ones([2, 1], f64), 1e-6), /non-finite/);
  assert.throws(
    () =>
      kernelMatrix(
        { arch: 'conv', depth: 1, wStd: 1, bStd: 0, type: 'ntk' },
        E.ones([2, 4], f64),
        E.ones([2, 4], f64),
      ),
    /\[N, C, H, W\]/,
  );
  assert.throws(
    () =>
      kernelMatrix({ arch: 'fc', depth: -1, wStd: 1, bStd: 0, type: 'ntk' }, E.ones([2, 4]), E.ones([2, 4])),
    /depth/,
  );
});

test('the KRR loss differentiates into support images and labels (fc and conv kernels) as finite differences say', () => {
  const gen = new E.Generator(6);
  const xt = randn(gen, 5, 1, 4, 4);
  const yt = centredOneHot(E.tensor([0, 1, 2, 0, 1], { dtype: 'int64' }), 3, 'float64');
  for (const arch of ['fc', 'conv'] as const) {
    const spec: KernelSpec = { arch, depth: 2, wStd: Math.SQRT2, bStd: 0.1, type: 'ntk' };
    const loss = (xs: E.Tensor, ys: E.Tensor) =>
      krrPredict(kernelMatrix(spec, xt, xs), kernelMatrix(spec, xs, xs), ys, 1e-3)
        .sub(yt)
        .square()
        .mean()
        .mul(0.5);
    const r = E.gradcheck(loss, [randn(gen, 3, 1, 4, 4), randn(gen, 3, 3)], { atol: 1e-6, rtol: 1e-4 });
    assert.ok(r.ok, `${arch}: ${JSON.stringify(r)}`);
  }
});
