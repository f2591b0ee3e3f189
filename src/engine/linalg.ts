// Linear algebra (libtorch's torch.linalg, LAPACK-backed on the CPU).
import { EngineError, run } from './errors.js';
import { native } from './native.js';
import { Tensor } from './tensor.js';

function square(op: string, a: Tensor): void {
  const s = a.shape;
  if (s.length < 2 || s[s.length - 1] !== s[s.length - 2]) {
    throw new EngineError(op, `expected a square matrix (or a batch of them), got shape [${s.join(', ')}]`);
  }
}

export function matmul(a: Tensor, b: Tensor): Tensor {
  return a.matmul(b);
}
export function mm(a: Tensor, b: Tensor): Tensor {
  return a.mm(b);
}
export function bmm(a: Tensor, b: Tensor): Tensor {
  return a.bmm(b);
}
export function outer(a: Tensor, b: Tensor): Tensor {
  return a.outer(b);
}
export function einsum(equation: string, ...operands: Tensor[]): Tensor {
  return new Tensor(
    run('einsum', () =>
      native.einsum(
        equation,
        operands.map((t) => t.handle),
      ),
    ),
  );
}
/** Cholesky factor L (lower, A = L L^T) or U (upper, A = U^T U) of a symmetric positive-definite A. */
export function cholesky(a: Tensor, upper = false): Tensor {
  square('cholesky', a);
  return new Tensor(run('cholesky', () => native.cholesky(a.handle, upper)));
}
/** Solves A X = B given the Cholesky factor of A. */
export function choleskySolve(b: Tensor, factor: Tensor, upper = false): Tensor {
  square('choleskySolve', factor);
  return new Tensor(run('choleskySolve', () => native.choleskySolve(b.handle, factor.handle, upper)));
}
/**
 * X with A X = B (`left`, the default) or X A = B, for a triangular A (lower unless `upper`).
 * Differentiable twice; the back-substitution half of a Cholesky solve.
 *
 *     const L = cholesky(K);  const z = solveTriangular(L, y);  // L z = y
 */
export function solveTriangular(
  a: Tensor,
  b: Tensor,
  o: { upper?: boolean; left?: boolean; unitriangular?: boolean } = {},
): Tensor {
  square('solveTriangular', a);
  return new Tensor(
    run('solveTriangular', () =>
      native.solveTriangular(a.handle, b.handle, o.upper ?? false, o.left ?? true, o.unitriangular ?? false),
    ),
  );
}
/** Solves A X = B. */
export function solve(a: Tensor, b: Tensor): Tensor {
  square('solve', a);
  return new Tensor(run('solve', () => native.solve(a.handle, b.handle)));
}
export function inv(a: Tensor): Tensor {
  square('inv', a);
  return new Tensor(run('inv', () => native.inv(a.handle)));
}
export function pinv(a: Tensor, o: { rtol?: number; hermitian?: boolean } = {}): Tensor {
  return new Tensor(run('pinv', () => native.pinv(a.handle, o.rtol ?? null, o.hermitian ?? false)));
}
/** Eigenvalues (ascending) and eigenvectors of a symmetric matrix. */
export function eigh(a: Tensor, uplo: 'L' | 'U' = 'L'): { eigenvalues: Tensor; eigenvectors: Tensor } {
  square('eigh', a);
  const [v, w] = run('eigh', () => native.eigh(a.handle, uplo === 'U'));
  return { eigenvalues: new Tensor(v), eigenvectors: new Tensor(w) };
}
/** A = U diag(S) Vh. */
export function svd(a: Tensor, fullMatrices = false): { U: Tensor; S: Tensor; Vh: Tensor } {
  const [u, s, vh] = run('svd', () => native.svd(a.handle, fullMatrices));
  return { U: new Tensor(u), S: new Tensor(s), Vh: new Tensor(vh) };
}
export function qr(a: Tensor, mode: 'reduced' | 'complete' = 'reduced'): { Q: Tensor; R: Tensor } {
  const [q, r] = run('qr', () => native.qr(a.handle, mode === 'complete'));
  return { Q: new Tensor(q), R: new Tensor(r) };
}
export function slogdet(a: Tensor): { sign: Tensor; logabsdet: Tensor } {
  square('slogdet', a);
  const [s, l] = run('slogdet', () => native.slogdet(a.handle));
  return { sign: new Tensor(s), logabsdet: new Tensor(l) };
}
export function det(a: Tensor): Tensor {
  square('det', a);
  return new Tensor(run('det', () => native.det(a.handle)));
}
export function trace(a: Tensor): Tensor {
  return new Tensor(run('trace', () => native.trace(a.handle)));
}
