// Maximum mean discrepancy between batches of samples (M3D's objective; Gretton et al. 2012):
//   MMD^2(X, Y) = mean_ij k(x_i, x_j) + mean_ij k(y_i, y_j) - 2 mean_ij k(x_i, y_j),
// the biased (V-statistic) estimate, which is what a loss over all pairs of both samples computes and
// is never negative. With the linear kernel k(x, y) = <x, y> it equals || mean x - mean y ||^2 (DM's
// loss); a characteristic kernel (Gaussian, Laplacian) matches every moment, not only the mean.
import * as E from '../engine/index.js';
import { KernelError } from './ntk.js';

export type MMDKernel = 'gaussian' | 'laplacian' | 'linear';

export interface MMDOptions {
  kernel: MMDKernel;
  /**
   * Squared bandwidth sigma^2 of k(x, y) = exp(-|x - y|^2 / (2 sigma^2)) (Gaussian) or exp(-|x - y| / sigma)
   * (Laplacian); 'median': per group, the median of the squared pairwise distances of the pooled sample
   * (X and Y together), without a gradient (the median heuristic). Ignored by the linear kernel.
   */
  bandwidth: number | 'median';
  /** Multipliers of the bandwidth; the kernel is the mean of one kernel per multiplier. Default [1]. */
  scales?: readonly number[];
}

/** Squared Euclidean distances [B, n, m] between the rows of x [B, n, D] and y [B, m, D], clamped at 0. */
export function squaredDistances(x: E.Tensor, y: E.Tensor): E.Tensor {
  return E.tidy(() => {
    const xx = x.square().sum(-1).unsqueeze(2);
    const yy = y.square().sum(-1).unsqueeze(1);
    // |x|^2 + |y|^2 - 2 <x, y> can round below 0 for near-identical rows; a distance is never negative.
    return xx
      .add(yy)
      .sub(x.bmm(y.transpose(1, 2)).mul(2))
      .clamp(0);
  });
}

/** Per group, the (lower) median of the squared distances among the pooled rows of x and y; no gradient. */
function medianBandwidth(x: E.Tensor, y: E.Tensor): E.Tensor {
  return E.noGrad(() =>
    E.tidy(() => {
      const pooled = E.cat([x.detach(), y.detach()], 1);
      const d = squaredDistances(pooled, pooled).reshape(pooled.size(0), -1);
      const n = pooled.size(1);
      // Off-diagonal pairs only (the diagonal's zeros would pull the median down): sort and skip them.
      const sorted = d.sort(1).values.narrow(1, n, d.size(1) - n);
      return sorted.select(1, Math.floor((sorted.size(1) - 1) / 2)).reshape(-1, 1, 1);
    }),
  );
}

function kernelOf(
  d2: E.Tensor,
  sigma2: E.Tensor | number,
  kernel: MMDKernel,
  scales: readonly number[],
): E.Tensor {
  const terms = scales.map((s) => {
    const width = typeof sigma2 === 'number' ? sigma2 * s : sigma2.mul(s);
    if (kernel === 'gaussian')
      return d2
        .div(typeof width === 'number' ? 2 * width : width.mul(2))
        .neg()
        .exp();
    // Laplacian: exp(-|x - y| / sigma); the epsilon keeps the square root's gradient finite at 0.
    const sigma = typeof width === 'number' ? Math.sqrt(width) : width.sqrt();
    return d2.add(1e-12).sqrt().div(sigma).neg().exp();
  });
  return terms.length === 1 ? terms[0]! : E.stack(terms, 0).mean(0);
}

/**
 * MMD^2 per group: x [B, n, D] and y [B, m, D] -> [B], differentiable in both (the bandwidth is not).
 *
 * @example mmd2(realEmbeddings, synEmbeddings, { kernel: 'gaussian', bandwidth: 'median' }).sum()
 */
export function mmd2(x: E.Tensor, y: E.Tensor, options: MMDOptions): E.Tensor {
  if (x.ndim !== 3 || y.ndim !== 3 || x.size(0) !== y.size(0) || x.size(2) !== y.size(2))
    throw new KernelError(
      `mmd2: expected x [B, n, D] and y [B, m, D], got [${x.shape.join(', ')}] and [${y.shape.join(', ')}]`,
    );
  const scales = options.scales ?? [1];
  if (scales.length === 0 || scales.some((s) => !(s > 0)))
    throw new KernelError(`mmd2: scales must be positive numbers, got [${scales.join(', ')}]`);
  if (typeof options.bandwidth === 'number' && !(options.bandwidth > 0))
    throw new KernelError(`mmd2: bandwidth must be positive or 'median', got ${options.bandwidth}`);
  return E.tidy(() => {
    if (options.kernel === 'linear') {
      const k = (a: E.Tensor, b: E.Tensor) => a.bmm(b.transpose(1, 2)).mean([1, 2]);
      return k(x, x).add(k(y, y)).sub(k(x, y).mul(2));
    }
    const sigma2 = options.bandwidth === 'median' ? medianBandwidth(x, y).clamp(1e-12) : options.bandwidth;
    const k = (a: E.Tensor, b: E.Tensor, self: boolean) => {
      const d2 = squaredDistances(a, b);
      // A sample's distance to itself is 0 analytically; rounding leaves a residue whose gradient the
      // Laplacian's square root would amplify, so the diagonal is set to an exact 0 (its gradient too).
      const exact = self
        ? d2.mul(
            E.ones([a.size(1), a.size(1)], { dtype: d2.dtype }).sub(
              E.eye(a.size(1), a.size(1), { dtype: d2.dtype }),
            ),
          )
        : d2;
      return kernelOf(exact, sigma2, options.kernel, scales).mean([1, 2]);
    };
    return k(x, x, true)
      .add(k(y, y, true))
      .sub(k(x, y, false).mul(2));
  });
}
