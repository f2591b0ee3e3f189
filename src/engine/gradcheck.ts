// Finite-difference checks of autograd, in float64: the foundation that every
// differentiable path of the methods (gradients of gradients, unrolled updates)
// is verified against.
import { grad } from './autograd.js';
import { randn, tensor } from './creation.js';
import { EngineError } from './errors.js';
import { Generator } from './random.js';
import { tidy } from './scope.js';
import type { Tensor } from './tensor.js';

export interface GradcheckOptions {
  /** Central-difference step. */
  eps?: number;
  /** Elementwise tolerance |analytic - numeric| <= atol + rtol * |numeric| (PyTorch's gradcheck defaults). */
  atol?: number;
  rtol?: number;
  /** Seed of the random output projection. */
  seed?: number;
}

export interface GradcheckResult {
  ok: boolean;
  /** Largest |analytic - numeric| over all input elements. */
  maxAbsError: number;
  /** ||analytic - numeric|| / max(||analytic||, ||numeric||), over all inputs together. */
  relError: number;
  /** First failing element, if any: input index, flat element index, both values. */
  worst?: { input: number; element: number; analytic: number; numeric: number };
}

type Fn = (...inputs: Tensor[]) => Tensor;

function checkInputs(op: string, inputs: Tensor[]): void {
  inputs.forEach((x, i) => {
    if (x.dtype !== 'float64')
      throw new EngineError(op, `input ${i} is ${x.dtype}; finite differences need float64`);
  });
}

/**
 * Compares the autograd gradient of s(x) = sum(fn(x) * v), for a fixed random v,
 * with central finite differences of s over every element of every input.
 */
export function gradcheck(fn: Fn, inputs: Tensor[], o: GradcheckOptions = {}): GradcheckResult {
  checkInputs('gradcheck', inputs);
  const eps = o.eps ?? 1e-6;
  const atol = o.atol ?? 1e-5;
  const rtol = o.rtol ?? 1e-3;
  return tidy(() => {
    const leaves = inputs.map((x) => x.detach().requiresGrad_(true));
    const out0 = fn(...leaves);
    const v = randn(out0.shape, { dtype: 'float64', generator: new Generator(o.seed ?? 0) });
    const scalar = (xs: Tensor[]): number =>
      tidy(() =>
        fn(...xs)
          .mul(v)
          .sum()
          .item(),
      );
    // An output without a graph (e.g. the gradient of a linear map) has derivative zero.
    const projected = out0.mul(v).sum();
    const grads = projected.requiresGrad
      ? grad(projected, leaves, { allowUnused: true })
      : leaves.map(() => null);
    const analytic = grads.map((g, i) =>
      g === null ? new Array<number>(leaves[i].numel).fill(0) : g.toNumbers(),
    );

    let maxAbsError = 0;
    let diff2 = 0;
    let a2 = 0;
    let n2 = 0;
    let worst: GradcheckResult['worst'];
    let ok = true;
    leaves.forEach((x, i) => {
      const base = x.toNumbers();
      for (let k = 0; k < base.length; k++) {
        const at = (delta: number): number => {
          const data = base.slice();
          data[k] += delta;
          const xs = leaves.slice();
          // Perturbed copies keep requiresGrad so fn may itself take gradients (gradgradcheck).
          xs[i] = tensor(Float64Array.from(data), { shape: x.shape }).requiresGrad_(true);
          return scalar(xs);
        };
        const numeric = (at(eps) - at(-eps)) / (2 * eps);
        const a = analytic[i][k];
        const err = Math.abs(a - numeric);
        maxAbsError = Math.max(maxAbsError, err);
        diff2 += err * err;
        a2 += a * a;
        n2 += numeric * numeric;
        if (err > atol + rtol * Math.abs(numeric) && ok) {
          ok = false;
          worst = { input: i, element: k, analytic: a, numeric };
        }
      }
    });
    const scale = Math.max(Math.sqrt(a2), Math.sqrt(n2));
    const relError = scale === 0 ? Math.sqrt(diff2) : Math.sqrt(diff2) / scale;
    return { ok, maxAbsError, relError, worst };
  });
}

/**
 * Checks second derivatives: gradcheck of x -> sum_i <d s / d x_i, w_i>, where the
 * inner gradient is taken with createGraph (the double-backward path DC/DSA use).
 */
export function gradgradcheck(fn: Fn, inputs: Tensor[], o: GradcheckOptions = {}): GradcheckResult {
  checkInputs('gradgradcheck', inputs);
  const seed = o.seed ?? 0;
  const gen = new Generator(seed + 1);
  const ws = inputs.map((x) => randn(x.shape, { dtype: 'float64', generator: gen }).keep());
  let v: Tensor | null = null;
  try {
    const firstOrder = (...xs: Tensor[]): Tensor => {
      const out = fn(...xs);
      v ??= randn(out.shape, { dtype: 'float64', generator: new Generator(seed) }).keep();
      const gs = grad(out.mul(v).sum(), xs, { createGraph: true, allowUnused: true });
      let total: Tensor | null = null;
      gs.forEach((g, i) => {
        if (g === null) return;
        const term = g.mul(ws[i]).sum();
        total = total === null ? term : total.add(term);
      });
      if (total === null) throw new EngineError('gradgradcheck', 'fn does not depend on any input');
      return total;
    };
    return gradcheck(firstOrder, inputs, { ...o, seed: seed + 2 });
  } finally {
    for (const w of ws) w.dispose();
    (v as Tensor | null)?.dispose();
  }
}
