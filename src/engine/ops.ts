// Functional forms of tensor operations (`add(a, b)` beside `a.add(b)`), plus
// the operations that take several tensors (cat, stack, where).
import { EngineError, run } from './errors.js';
import { native } from './native.js';
import { Tensor, type Dims, type Operand } from './tensor.js';

function nonEmpty(op: string, ts: readonly Tensor[]): void {
  if (ts.length === 0) throw new EngineError(op, 'needs at least one tensor');
}

export function cat(tensors: readonly Tensor[], dim = 0): Tensor {
  nonEmpty('cat', tensors);
  return new Tensor(
    run('cat', () =>
      native.cat(
        tensors.map((t) => t.handle),
        dim,
      ),
    ),
  );
}
export function stack(tensors: readonly Tensor[], dim = 0): Tensor {
  nonEmpty('stack', tensors);
  return new Tensor(
    run('stack', () =>
      native.stack(
        tensors.map((t) => t.handle),
        dim,
      ),
    ),
  );
}
/** Elementwise choice: a where cond is true, b elsewhere. */
export function where(cond: Tensor, a: Operand, b: Operand): Tensor {
  const h = (x: Operand) => (typeof x === 'number' ? x : x.handle);
  return new Tensor(run('where', () => native.where(cond.handle, h(a), h(b))));
}

export const add = (a: Tensor, b: Operand, alpha = 1): Tensor => a.add(b, alpha);
export const sub = (a: Tensor, b: Operand, alpha = 1): Tensor => a.sub(b, alpha);
export const mul = (a: Tensor, b: Operand): Tensor => a.mul(b);
export const div = (a: Tensor, b: Operand): Tensor => a.div(b);
export const pow = (a: Tensor, b: Operand): Tensor => a.pow(b);
export const maximum = (a: Tensor, b: Operand): Tensor => a.maximum(b);
export const minimum = (a: Tensor, b: Operand): Tensor => a.minimum(b);
export const neg = (a: Tensor): Tensor => a.neg();
export const abs = (a: Tensor): Tensor => a.abs();
export const exp = (a: Tensor): Tensor => a.exp();
export const log = (a: Tensor): Tensor => a.log();
export const sqrt = (a: Tensor): Tensor => a.sqrt();
export const rsqrt = (a: Tensor): Tensor => a.rsqrt();
export const sin = (a: Tensor): Tensor => a.sin();
export const cos = (a: Tensor): Tensor => a.cos();
export const sign = (a: Tensor): Tensor => a.sign();
export const clamp = (a: Tensor, min?: number, max?: number): Tensor => a.clamp(min, max);
export const relu = (a: Tensor): Tensor => a.relu();
export const leakyRelu = (a: Tensor, slope = 0.01): Tensor => a.leakyRelu(slope);
export const sigmoid = (a: Tensor): Tensor => a.sigmoid();
export const tanh = (a: Tensor): Tensor => a.tanh();
export const silu = (a: Tensor): Tensor => a.silu();
export const gelu = (a: Tensor, approximate: 'none' | 'tanh' = 'none'): Tensor => a.gelu(approximate);
export const softplus = (a: Tensor, beta = 1, threshold = 20): Tensor => a.softplus(beta, threshold);
export const sum = (a: Tensor, dims?: Dims, keepdim = false): Tensor => a.sum(dims, keepdim);
export const mean = (a: Tensor, dims?: Dims, keepdim = false): Tensor => a.mean(dims, keepdim);
export const norm = (a: Tensor, p = 2, dims?: Dims, keepdim = false): Tensor => a.norm(p, dims, keepdim);
export const logsumexp = (a: Tensor, dims: Dims, keepdim = false): Tensor => a.logsumexp(dims, keepdim);
export const argmax = (a: Tensor, dim?: number, keepdim = false): Tensor => a.argmax(dim, keepdim);
export const argmin = (a: Tensor, dim?: number, keepdim = false): Tensor => a.argmin(dim, keepdim);
export const reshape = (a: Tensor, shape: readonly number[]): Tensor => a.reshape(shape);
export const flatten = (a: Tensor, start = 0, end = -1): Tensor => a.flatten(start, end);
export const transpose = (a: Tensor, d0: number, d1: number): Tensor => a.transpose(d0, d1);
export const permute = (a: Tensor, ...dims: number[]): Tensor => a.permute(...dims);
export const squeeze = (a: Tensor, dim?: number): Tensor => a.squeeze(dim);
export const unsqueeze = (a: Tensor, dim: number): Tensor => a.unsqueeze(dim);
export const flip = (a: Tensor, ...dims: number[]): Tensor => a.flip(...dims);
export const roll = (a: Tensor, shifts: Dims, dims: Dims): Tensor => a.roll(shifts, dims);
export const indexSelect = (a: Tensor, dim: number, index: Tensor): Tensor => a.indexSelect(dim, index);
export const gather = (a: Tensor, dim: number, index: Tensor): Tensor => a.gather(dim, index);
export const detach = (a: Tensor): Tensor => a.detach();
