// Kernel ridge regression: the closed-form inner loop of KIP, RFAD and FRePo.
//   alpha = (K_ss + lambda I)^-1 Y_s,   prediction on targets = K_ts alpha,
// with KIP/FRePo's ridge lambda = |reg| * trace(K_ss) / n_s (relative to the mean diagonal, so one
// reg fits kernels of any scale). The solve is a Cholesky factorisation and two triangular solves.
//
// Precision: with reg 1e-6 the regularised support kernel can have a condition number near 1e6; a
// float32 Cholesky then loses about all of its 7 significant digits (or fails outright), so the
// solve runs in float64 (as KIP enables jax x64 and RFAD calls .double()) and the prediction is
// cast back to the kernel's dtype.
import * as E from '../engine/index.js';
import { KernelError } from './ntk.js';

/** K + |reg| trace(K) / n I. */
export function regularized(kss: E.Tensor, reg: number): E.Tensor {
  const n = kss.size(0);
  return E.tidy(() => {
    // Differentiable through the trace, as in the references (KIP's jnp.trace, RFAD's torch.trace).
    const ridge = kss
      .diagonal()
      .sum()
      .mul(Math.abs(reg) / n);
    return kss.add(E.eye(n, n, { dtype: kss.dtype }).mul(ridge));
  });
}

/**
 * alpha = (K_ss + |reg| tr(K_ss)/n I)^-1 Y_s in float64, differentiable in both.
 * Throws KernelError with the way out when the regularised matrix is not positive definite.
 */
export function krrSolve(kss: E.Tensor, ys: E.Tensor, reg: number): E.Tensor {
  if (kss.ndim !== 2 || kss.size(0) !== kss.size(1) || ys.ndim !== 2 || ys.size(0) !== kss.size(0))
    throw new KernelError(
      `krrSolve: expected K_ss [n, n] and Y_s [n, k], got [${kss.shape.join(', ')}] and [${ys.shape.join(', ')}]`,
    );
  return E.tidy(() => {
    // LAPACK's Cholesky does not always fail on NaN input; check first so NaN never reaches the images.
    if (E.noGrad(() => kss.isfinite().all().item()) !== 1)
      throw new KernelError(
        'the support kernel matrix has non-finite entries: the synthetic images diverged; lower the learning rate',
      );
    const a = regularized(kss.double(), reg);
    let factor: E.Tensor;
    try {
      factor = E.linalg.cholesky(a);
    } catch (e) {
      throw new KernelError(
        `the support kernel matrix plus ridge ${Math.abs(reg)} x trace/n is not positive definite (duplicate or collapsed support points?); raise the regularisation (reg, e.g. 1e-4) (${(e as Error).message.split('\n')[0]})`,
      );
    }
    return E.linalg.choleskySolve(ys.double(), factor);
  });
}

/**
 * K_ts (K_ss + |reg| tr(K_ss)/n I)^-1 Y_s: the KRR prediction on the targets, in K_ts's dtype.
 *
 * @example const pred = krrPredict(kernelMatrix(spec, xt, xs), kernelMatrix(spec, xs, xs), ys, 1e-6);
 */
export function krrPredict(kts: E.Tensor, kss: E.Tensor, ys: E.Tensor, reg: number): E.Tensor {
  if (kts.ndim !== 2 || kts.size(1) !== kss.size(0))
    throw new KernelError(
      `krrPredict: K_ts [${kts.shape.join(', ')}] does not match K_ss [${kss.shape.join(', ')}]`,
    );
  return E.tidy(() =>
    kts
      .double()
      .matmul(krrSolve(kss, ys, reg))
      .to(kts.dtype),
  );
}

/**
 * KIP's label solve (kip/KIP.ipynb): the support labels that minimise ||Y_t - K_ts (K_ss + r I)^-1 Y_s||
 * given the kernel, y_s = (K_ss + r I) (K_ts^T K_ts + r I)^-1 K_ts^T Y_t with r = reg / n_s (not trace-scaled,
 * as in the reference). Valid when n_s <= n_t.
 */
export function labelSolve(kts: E.Tensor, kss: E.Tensor, yt: E.Tensor, reg: number): E.Tensor {
  const n = kss.size(0);
  if (kts.size(0) < n)
    throw new KernelError(
      `labelSolve needs at least as many targets as support points (${kts.size(0)} < ${n})`,
    );
  return E.tidy(() => {
    const k = kts.double();
    const eye = E.eye(n, n, { dtype: 'float64' }).mul(Math.abs(reg) / n);
    const m = k.t().matmul(k).add(eye);
    const z = E.linalg.choleskySolve(k.t().matmul(yt.double()), E.linalg.cholesky(m));
    return kss.double().add(eye).matmul(z).to(kts.dtype);
  });
}

/** Centred one-hot regression targets (one-hot minus 1/k), as KIP, RFAD and FRePo encode labels. */
export function centredOneHot(labels: E.Tensor, k: number, dtype: E.DType = 'float32'): E.Tensor {
  return E.tidy(() =>
    E.nn
      .oneHot(labels, k)
      .to(dtype)
      .sub(1 / k),
  );
}

/** KIP's loss: 0.5 mean((K_ts (K_ss + ridge)^-1 Y_s - Y_t)^2) over all target entries (kip/KIP.ipynb). */
export function krrMseLoss(kts: E.Tensor, kss: E.Tensor, ys: E.Tensor, yt: E.Tensor, reg: number): E.Tensor {
  return E.tidy(() => krrPredict(kts, kss, ys, reg).sub(yt.to(kts.dtype)).square().mean().mul(0.5));
}

/**
 * Test accuracy of kernel ridge regression from the support set (xs, ys) with `kernel`: the argmax of
 * K(x, X_s) alpha against the test labels, in chunks of `chunk` test images (bounded memory).
 */
export function krrAccuracy(
  kernel: (a: E.Tensor, b: E.Tensor) => E.Tensor,
  xs: E.Tensor,
  ys: E.Tensor,
  test: { images: E.Tensor; labels: E.Tensor },
  reg: number,
  chunk = 500,
): number {
  return E.noGrad(() =>
    E.tidy(() => {
      const alpha = krrSolve(kernel(xs, xs), ys, reg);
      const n = test.images.size(0);
      let correct = 0;
      for (let start = 0; start < n; start += chunk)
        correct += E.tidy(() => {
          const len = Math.min(chunk, n - start);
          const pred = kernel(test.images.narrow(0, start, len), xs)
            .double()
            .matmul(alpha);
          return pred
            .argmax(1)
            .eq(test.labels.narrow(0, start, len))
            .sum()
            .item();
        });
      return correct / n;
    }),
  );
}
