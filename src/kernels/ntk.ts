// Infinite-width kernels of ReLU networks (NNGP and NTK), computed by the layer-wise recursion that
// neural-tangents' stax uses (Dense/Conv in the 'ntk' parameterization, Relu by the arc-cosine
// formulas, Flatten by averaging over positions), built from differentiable engine ops so that a
// kernel-ridge-regression loss differentiates into the images that enter it.
//
// Two architectures:
// - 'fc': Flatten -> depth x [Dense, ReLU] -> Dense. The cost is one Gram matrix of the flattened
//   inputs, O(n1 n2 d), then elementwise work on [n1, n2].
// - 'conv': depth x [Conv 3x3 SAME, ReLU] -> Flatten -> Dense (KIP's 'FullyConvolutionalNetwork'). With a
//   flatten readout and no pooling the output covariance only ever needs the covariance of the same
//   position in both images (a 3x3 convolution of the kernel sums same-offset neighbours), so the
//   kernel is a stack of [n1, n2, H, W] maps: O(n1 n2 H W (C + 9 depth)) time and n1 n2 H W memory per
//   layer. The ConvNet kernel with average pooling (KIP's NeurIPS 2021 'ConvNet') mixes positions
//   and needs [n1, n2, HW, HW]; it is not affordable on a CPU and is not provided.
import * as E from '../engine/index.js';

/** Which infinite-width network the kernel is the limit of. */
export interface KernelSpec {
  arch: 'fc' | 'conv';
  /** ReLU layers (hidden Dense or Conv layers) before the readout. */
  depth: number;
  /** Weight and bias standard deviations (ntk parameterization: W ~ N(0, wStd^2 / fan_in)). */
  wStd: number;
  bStd: number;
  /**
   * 'ntk' (gradient-descent training to convergence) or 'nngp' (Bayesian / last layer only). Not named
   * `kind`: configs treat an object's `kind` as its tag (deepMerge replaces a differently tagged object).
   */
  type: 'ntk' | 'nngp';
}

/** KIP's default kernel (kip/KIP.ipynb): FC, one hidden layer, W_std sqrt(2), b_std 0.1, NTK. */
export const KIP_KERNEL: KernelSpec = { arch: 'fc', depth: 1, wStd: Math.SQRT2, bStd: 0.1, type: 'ntk' };

/** The kernel recursion's state: cross covariances and both sides' variances (per position for conv). */
interface State {
  /** [n1, n2] (fc) or [n1, n2, H, W] (conv). */
  nngp: E.Tensor;
  ntk: E.Tensor | null;
  /** Variances of the first and second inputs, shaped to broadcast against nngp. */
  q1: E.Tensor;
  q2: E.Tensor;
}

export class KernelError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KernelError';
  }
}

function validate(spec: KernelSpec, x1: E.Tensor, x2: E.Tensor): void {
  if (!Number.isInteger(spec.depth) || spec.depth < 0)
    throw new KernelError(`kernel depth must be a whole number >= 0, got ${spec.depth}`);
  if (!(spec.wStd > 0) || !(spec.bStd >= 0))
    throw new KernelError(`kernel wStd must be > 0 and bStd >= 0, got ${spec.wStd}, ${spec.bStd}`);
  if (x1.ndim !== x2.ndim || x1.shape.slice(1).join() !== x2.shape.slice(1).join())
    throw new KernelError(
      `kernel inputs must have the same shape past the batch dimension, got [${x1.shape.join(', ')}] and [${x2.shape.join(', ')}]`,
    );
  if (spec.arch === 'conv' && x1.ndim !== 4)
    throw new KernelError(`the conv kernel takes [N, C, H, W] images, got [${x1.shape.join(', ')}]`);
}

/** Dense or Conv layer (ntk parameterization): Sigma <- w^2 mix(Sigma) + b^2, Theta <- Sigma + w^2 mix(Theta). */
function affine(s: State, spec: KernelSpec, mix: (t: E.Tensor) => E.Tensor): State {
  const w2 = spec.wStd * spec.wStd;
  const b2 = spec.bStd * spec.bStd;
  const nngp = mix(s.nngp).mul(w2).add(b2);
  const ntk = s.ntk ? mix(s.ntk).mul(w2).add(nngp) : nngp;
  return { nngp, ntk, q1: mix(s.q1).mul(w2).add(b2), q2: mix(s.q2).mul(w2).add(b2) };
}

/**
 * ReLU by the arc-cosine formulas (Cho & Saul 2009): with cos t = Sigma / sqrt(q1 q2),
 * Sigma <- sqrt(q1 q2) (sin t + (pi - t) cos t) / (2 pi), Theta <- Theta (pi - t) / (2 pi), q <- q / 2.
 * acos has an infinite derivative at cos = 1, which is exactly where the diagonal of K(X, X) sits. Pairs
 * within `delta` of alignment (the diagonal, and duplicates) therefore take the aligned limit t = 0
 * (Sigma = sqrt(q1 q2) / 2, Theta / 2), whose value and gradient are the diagonal's own; the others go
 * through acos with inputs kept away from +-1. The aligned limit's error for a near-duplicate pair is
 * O(delta) relative.
 */
function relu(s: State): State {
  const delta = s.nngp.dtype === 'float64' ? 1e-10 : 1e-5;
  const norm = s.q1.mul(s.q2).add(1e-30).sqrt();
  const cos = s.nngp.div(norm).clamp(-1 + delta, 1);
  const aligned = E.noGrad(() => cos.gt(1 - delta).to(cos.dtype));
  const open = aligned.rsub(1);
  // Masked multiplications rather than a select: the aligned entries must not see acos's derivative at all.
  const c = cos.mul(open);
  const t = c.acos().mul(open);
  const sin = c.square().rsub(1).sqrt().mul(open);
  const cosEff = c.add(aligned);
  const piMinusT = t.rsub(Math.PI);
  const nngp = norm.mul(sin.add(piMinusT.mul(cosEff))).div(2 * Math.PI);
  const ntk = s.ntk ? s.ntk.mul(piMinusT).div(2 * Math.PI) : null;
  return { nngp, ntk, q1: s.q1.div(2), q2: s.q2.div(2) };
}

/** The input layer's covariances: x1 . x2 / d (fc), or per position, summed over channels / C (conv). */
function inputState(spec: KernelSpec, x1: E.Tensor, x2: E.Tensor): State {
  if (spec.arch === 'fc') {
    const a = x1.flatten(1);
    const b = x2.flatten(1);
    const d = a.size(1);
    return {
      nngp: a.matmul(b.t()).div(d),
      ntk: null,
      q1: a.square().sum(1).div(d).unsqueeze(1),
      q2: b.square().sum(1).div(d).unsqueeze(0),
    };
  }
  const c = x1.size(1);
  return {
    nngp: E.linalg.einsum('achw,bchw->abhw', x1, x2).div(c),
    ntk: null,
    q1: x1.square().sum(1).div(c).unsqueeze(1),
    q2: x2.square().sum(1).div(c).unsqueeze(0),
  };
}

/** A 3x3 SAME convolution in kernel space: the mean over each position's 3x3 neighbourhood, zero-padded. */
function boxMean(t: E.Tensor): E.Tensor {
  const [h, w] = t.shape.slice(-2);
  const lead = t.shape.slice(0, -2);
  const flat = t.reshape(-1, 1, h, w);
  return E.nn.avgPool2d(flat, 3, { stride: 1, padding: 1, countIncludePad: true }).reshape(...lead, h, w);
}

/** Flatten of a conv kernel: the mean over positions. */
function flattenPositions(s: State): State {
  const m = (t: E.Tensor) => t.mean([-2, -1]);
  return { nngp: m(s.nngp), ntk: s.ntk ? m(s.ntk) : null, q1: m(s.q1), q2: m(s.q2) };
}

/**
 * The [n1, n2] kernel matrix between two batches of images under `spec`, in the inputs' dtype,
 * differentiable in both inputs. K(X, X) is symmetric positive semi-definite.
 *
 * @example
 *   const kss = kernelMatrix(KIP_KERNEL, xs, xs); // [Ns, Ns]
 *   const kts = kernelMatrix(KIP_KERNEL, xt, xs); // [Nt, Ns]
 */
export function kernelMatrix(spec: KernelSpec, x1: E.Tensor, x2: E.Tensor): E.Tensor {
  validate(spec, x1, x2);
  return E.tidy(() => {
    let s = inputState(spec, x1, x2);
    const identity = (t: E.Tensor) => t;
    for (let l = 0; l < spec.depth; l++) {
      s = affine(s, spec, spec.arch === 'conv' ? boxMean : identity);
      s = relu(s);
    }
    if (spec.arch === 'conv') s = flattenPositions(s);
    s = affine(s, spec, identity);
    return spec.type === 'ntk' ? (s.ntk as E.Tensor) : s.nngp;
  });
}
