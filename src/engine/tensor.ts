// The Tensor class: a handle to a libtorch tensor plus the method-style API.
// Methods are thin front doors: they validate what libtorch would report
// obscurely, call the addon, and wrap the result. Functional forms live in ops.ts.
import { checkDevice, type Device } from './device.js';
import { DTYPE_BYTES, dtypeCode, dtypeFromCode, viewBytes, type DType, type TypedArray } from './dtype.js';
import { EngineError, run } from './errors.js';
import { native, type Handle } from './native.js';
import { SCOPE_OWNED, keep, track, untrack, type ScopeOwned } from './scope.js';

export type Dims = number | readonly number[];
export type Operand = Tensor | number;
export type MemoryFormat = 'contiguous' | 'channelsLast';
export type NestedArray = number | boolean | NestedArray[];

function operand(x: Operand): Handle | number {
  return typeof x === 'number' ? x : x.handle;
}

function dimsOrNull(dims: Dims | undefined): Dims | null {
  return dims === undefined ? null : dims;
}

/**
 * Tensors left to GC finalizers since the event loop last ran. Finalizers only run when the loop
 * yields, so a synchronous loop that creates tensors outside tidy() grows without bound however
 * much external memory V8 is told about: warn once, with the way out.
 */
export const UNSCOPED_WARNING_THRESHOLD = 20_000;
let unscopedSinceYield = 0;
let resetScheduled = false;
let warned = false;

function countUnscoped(): void {
  unscopedSinceYield++;
  if (!resetScheduled) {
    resetScheduled = true;
    setImmediate(() => {
      unscopedSinceYield = 0;
      resetScheduled = false;
    });
  }
  if (!warned && unscopedSinceYield >= UNSCOPED_WARNING_THRESHOLD) {
    warned = true;
    process.emitWarning(
      `${UNSCOPED_WARNING_THRESHOLD} tensors were created outside tidy() without the event loop running; ` +
        'their native memory is freed only by garbage-collection finalizers, which cannot run until the loop yields. ' +
        'Wrap each step in E.tidy(() => ...) returning numbers (e.g. loss.item()), or dispose() tensors you keep.',
      { code: 'DISTILLERY_UNSCOPED_TENSORS' },
    );
  }
}

export class Tensor implements ScopeOwned {
  readonly [SCOPE_OWNED] = true;
  scope: Set<ScopeOwned> | null = null;
  #handle: Handle | null;
  #shape: number[] | null = null;
  #dtype: DType | null = null;

  /** Wraps a native handle. Library code creates tensors through ops, not this constructor. */
  constructor(handle: Handle) {
    this.#handle = handle;
    track(this);
  }

  /** The native handle; throws if the tensor was disposed. */
  get handle(): Handle {
    if (this.#handle === null) {
      throw new EngineError(
        'tensor',
        'this tensor was disposed (by dispose() or at the end of a tidy() scope) and cannot be used',
      );
    }
    return this.#handle;
  }

  get isDisposed(): boolean {
    return this.#handle === null;
  }

  /** Frees the native memory now. Idempotent. */
  dispose(): void {
    if (this.#handle === null) return;
    native.dispose(this.#handle);
    this.#handle = null;
    untrack(this);
  }

  /** Keeps this tensor alive past the enclosing tidy() scopes. */
  keep(): this {
    return keep(this);
  }

  /** Outside any scope only GC finalizers free the tensor: tell V8 how heavy it is. */
  unscoped(): void {
    if (this.#handle === null) return;
    native.reportExternal(this.#handle);
    countUnscoped();
  }

  // ---- metadata ----
  get shape(): number[] {
    this.#shape ??= native.shape(this.handle);
    return this.#shape.slice();
  }
  get ndim(): number {
    this.#shape ??= native.shape(this.handle);
    return this.#shape.length;
  }
  get numel(): number {
    this.#shape ??= native.shape(this.handle);
    return this.#shape.reduce((a, b) => a * b, 1);
  }
  size(dim: number): number {
    const shape = this.shape;
    const d = dim < 0 ? dim + shape.length : dim;
    if (d < 0 || d >= shape.length) {
      throw new EngineError(
        'size',
        `dimension ${dim} is out of range for a tensor of shape [${shape.join(', ')}]`,
      );
    }
    return shape[d];
  }
  get dtype(): DType {
    this.#dtype ??= dtypeFromCode(native.dtype(this.handle));
    return this.#dtype;
  }
  get device(): string {
    return native.device(this.handle);
  }
  isContiguous(): boolean {
    return native.isContiguous(this.handle);
  }
  isChannelsLast(): boolean {
    return native.isChannelsLast(this.handle);
  }
  toString(): string {
    if (this.isDisposed) return 'Tensor(disposed)';
    return `Tensor(shape=[${this.shape.join(', ')}], dtype=${this.dtype}, device=${this.device})`;
  }

  // ---- conversion and export ----
  to(target: DType | Device | { dtype?: DType; device?: Device }): Tensor {
    const spec =
      typeof target === 'string'
        ? /^(cpu|cuda)/.test(target)
          ? { device: target as Device }
          : { dtype: target as DType }
        : target;
    const device = spec.device === undefined ? null : checkDevice('to', spec.device);
    const dtype = spec.dtype === undefined ? null : dtypeCode(spec.dtype);
    return new Tensor(run('to', () => native.to(this.handle, dtype, device)));
  }
  float(): Tensor {
    return this.to({ dtype: 'float32' });
  }
  double(): Tensor {
    return this.to({ dtype: 'float64' });
  }
  long(): Tensor {
    return this.to({ dtype: 'int64' });
  }
  cpu(): Tensor {
    return this.to({ device: 'cpu' });
  }
  clone(): Tensor {
    return new Tensor(native.clone(this.handle));
  }
  contiguous(format: MemoryFormat = 'contiguous'): Tensor {
    if (format === 'channelsLast' && this.ndim !== 4) {
      throw new EngineError(
        'contiguous',
        `channelsLast needs a 4-D tensor, got shape [${this.shape.join(', ')}]`,
      );
    }
    return new Tensor(native.contiguous(this.handle, format === 'channelsLast'));
  }
  /** The elements as a typed array (a copy; int64 as BigInt64Array, float16/bfloat16 as raw Uint16Array). */
  toArray(): TypedArray {
    return viewBytes(
      run('toArray', () => native.toData(this.handle)),
      this.dtype,
    );
  }
  /** The elements as a flat array of numbers (int64 converted with Number()). */
  toNumbers(): number[] {
    if (this.dtype === 'float16' || this.dtype === 'bfloat16') return this.float().toNumbers();
    const arr = this.toArray();
    return Array.from(arr as ArrayLike<number | bigint>, (v) => Number(v));
  }
  /** Nested arrays in the tensor's shape. */
  toList(): NestedArray {
    const flat = this.toNumbers();
    const shape = this.shape;
    const isBool = this.dtype === 'bool';
    const build = (dim: number, offset: number): NestedArray => {
      if (dim === shape.length) return isBool ? flat[offset] !== 0 : flat[offset];
      const stride = shape.slice(dim + 1).reduce((a, b) => a * b, 1);
      return Array.from({ length: shape[dim] }, (_, i) => build(dim + 1, offset + i * stride));
    };
    return build(0, 0);
  }
  item(): number {
    return Number(run('item', () => native.item(this.handle)));
  }
  /** Bytes the elements occupy (not counting views' shared storage). */
  get nbytes(): number {
    return this.numel * DTYPE_BYTES[this.dtype];
  }

  // ---- shape ----
  reshape(...shape: number[] | [readonly number[]]): Tensor {
    const s = Array.isArray(shape[0]) ? (shape[0] as readonly number[]) : (shape as number[]);
    return new Tensor(run('reshape', () => native.reshape(this.handle, s)));
  }
  view(...shape: number[] | [readonly number[]]): Tensor {
    const s = Array.isArray(shape[0]) ? (shape[0] as readonly number[]) : (shape as number[]);
    return new Tensor(run('view', () => native.view(this.handle, s)));
  }
  permute(...dims: number[]): Tensor {
    return new Tensor(run('permute', () => native.permute(this.handle, dims)));
  }
  transpose(dim0: number, dim1: number): Tensor {
    return new Tensor(run('transpose', () => native.transpose(this.handle, dim0, dim1)));
  }
  /** Matrix transpose of a 2-D tensor. */
  t(): Tensor {
    if (this.ndim !== 2)
      throw new EngineError('t', `expects a 2-D tensor, got shape [${this.shape.join(', ')}]`);
    return this.transpose(0, 1);
  }
  flatten(startDim = 0, endDim = -1): Tensor {
    return new Tensor(run('flatten', () => native.flatten(this.handle, startDim, endDim)));
  }
  squeeze(dim?: number): Tensor {
    return new Tensor(run('squeeze', () => native.squeeze(this.handle, dim ?? null)));
  }
  unsqueeze(dim: number): Tensor {
    return new Tensor(run('unsqueeze', () => native.unsqueeze(this.handle, dim)));
  }
  expand(...shape: number[]): Tensor {
    return new Tensor(run('expand', () => native.expand(this.handle, shape)));
  }
  repeat(...reps: number[]): Tensor {
    return new Tensor(run('repeat', () => native.repeat(this.handle, reps)));
  }
  narrow(dim: number, start: number, length: number): Tensor {
    return new Tensor(run('narrow', () => native.narrow(this.handle, dim, start, length)));
  }
  /** Elements start..end (exclusive) with the given step along dim; negative indices count from the end. */
  slice(dim: number, start?: number, end?: number, step = 1): Tensor {
    return new Tensor(run('slice', () => native.slice(this.handle, dim, start ?? null, end ?? null, step)));
  }
  select(dim: number, index: number): Tensor {
    return new Tensor(run('select', () => native.select(this.handle, dim, index)));
  }
  indexSelect(dim: number, index: Tensor): Tensor {
    return new Tensor(run('indexSelect', () => native.indexSelect(this.handle, dim, index.handle)));
  }
  gather(dim: number, index: Tensor): Tensor {
    return new Tensor(run('gather', () => native.gather(this.handle, dim, index.handle)));
  }
  scatter(dim: number, index: Tensor, src: Operand): Tensor {
    return new Tensor(run('scatter', () => native.scatter(this.handle, dim, index.handle, operand(src))));
  }
  scatterAdd(dim: number, index: Tensor, src: Tensor): Tensor {
    return new Tensor(run('scatterAdd', () => native.scatterAdd(this.handle, dim, index.handle, src.handle)));
  }
  indexAdd(dim: number, index: Tensor, src: Tensor): Tensor {
    return new Tensor(run('indexAdd', () => native.indexAdd(this.handle, dim, index.handle, src.handle)));
  }
  maskedFill(mask: Tensor, value: number): Tensor {
    return new Tensor(run('maskedFill', () => native.maskedFill(this.handle, mask.handle, value)));
  }
  maskedSelect(mask: Tensor): Tensor {
    return new Tensor(run('maskedSelect', () => native.maskedSelect(this.handle, mask.handle)));
  }
  nonzero(): Tensor {
    return new Tensor(native.nonzero(this.handle));
  }
  flip(...dims: number[]): Tensor {
    return new Tensor(run('flip', () => native.flip(this.handle, dims)));
  }
  roll(shifts: Dims, dims: Dims): Tensor {
    return new Tensor(run('roll', () => native.roll(this.handle, shifts, dims)));
  }
  split(sizes: number | readonly number[], dim = 0): Tensor[] {
    return run('split', () => native.split(this.handle, sizes, dim)).map((h) => new Tensor(h));
  }
  chunk(chunks: number, dim = 0): Tensor[] {
    return run('chunk', () => native.chunk(this.handle, chunks, dim)).map((h) => new Tensor(h));
  }
  unbind(dim = 0): Tensor[] {
    return run('unbind', () => native.unbind(this.handle, dim)).map((h) => new Tensor(h));
  }
  tril(k = 0): Tensor {
    return new Tensor(run('tril', () => native.tril(this.handle, k)));
  }
  triu(k = 0): Tensor {
    return new Tensor(run('triu', () => native.triu(this.handle, k)));
  }
  diag(k = 0): Tensor {
    return new Tensor(run('diag', () => native.diag(this.handle, k)));
  }
  diagonal(offset = 0, dim1 = 0, dim2 = 1): Tensor {
    return new Tensor(run('diagonal', () => native.diagonal(this.handle, offset, dim1, dim2)));
  }

  // ---- elementwise (broadcasting; a number is a scalar operand) ----
  add(other: Operand, alpha = 1): Tensor {
    return new Tensor(run('add', () => native.add(this.handle, operand(other), alpha)));
  }
  sub(other: Operand, alpha = 1): Tensor {
    return new Tensor(run('sub', () => native.sub(this.handle, operand(other), alpha)));
  }
  /** other - this, for a scalar other. */
  rsub(other: number): Tensor {
    return new Tensor(run('rsub', () => native.rsub(this.handle, other)));
  }
  mul(other: Operand): Tensor {
    return new Tensor(run('mul', () => native.mul(this.handle, operand(other))));
  }
  div(other: Operand): Tensor {
    return new Tensor(run('div', () => native.div(this.handle, operand(other))));
  }
  pow(exponent: Operand): Tensor {
    return new Tensor(run('pow', () => native.pow(this.handle, operand(exponent))));
  }
  remainder(other: Operand): Tensor {
    return new Tensor(run('remainder', () => native.remainder(this.handle, operand(other))));
  }
  maximum(other: Operand): Tensor {
    return new Tensor(run('maximum', () => native.maximum(this.handle, operand(other))));
  }
  minimum(other: Operand): Tensor {
    return new Tensor(run('minimum', () => native.minimum(this.handle, operand(other))));
  }
  eq(other: Operand): Tensor {
    return new Tensor(run('eq', () => native.eq(this.handle, operand(other))));
  }
  ne(other: Operand): Tensor {
    return new Tensor(run('ne', () => native.ne(this.handle, operand(other))));
  }
  lt(other: Operand): Tensor {
    return new Tensor(run('lt', () => native.lt(this.handle, operand(other))));
  }
  le(other: Operand): Tensor {
    return new Tensor(run('le', () => native.le(this.handle, operand(other))));
  }
  gt(other: Operand): Tensor {
    return new Tensor(run('gt', () => native.gt(this.handle, operand(other))));
  }
  ge(other: Operand): Tensor {
    return new Tensor(run('ge', () => native.ge(this.handle, operand(other))));
  }
  logicalAnd(other: Tensor): Tensor {
    return new Tensor(run('logicalAnd', () => native.logicalAnd(this.handle, other.handle)));
  }
  logicalOr(other: Tensor): Tensor {
    return new Tensor(run('logicalOr', () => native.logicalOr(this.handle, other.handle)));
  }
  logicalXor(other: Tensor): Tensor {
    return new Tensor(run('logicalXor', () => native.logicalXor(this.handle, other.handle)));
  }
  logicalNot(): Tensor {
    return new Tensor(native.logicalNot(this.handle));
  }
  neg(): Tensor {
    return new Tensor(native.neg(this.handle));
  }
  abs(): Tensor {
    return new Tensor(native.abs(this.handle));
  }
  exp(): Tensor {
    return new Tensor(run('exp', () => native.exp(this.handle)));
  }
  log(): Tensor {
    return new Tensor(run('log', () => native.log(this.handle)));
  }
  log1p(): Tensor {
    return new Tensor(run('log1p', () => native.log1p(this.handle)));
  }
  sqrt(): Tensor {
    return new Tensor(run('sqrt', () => native.sqrt(this.handle)));
  }
  rsqrt(): Tensor {
    return new Tensor(run('rsqrt', () => native.rsqrt(this.handle)));
  }
  square(): Tensor {
    return new Tensor(run('square', () => native.square(this.handle)));
  }
  reciprocal(): Tensor {
    return new Tensor(run('reciprocal', () => native.reciprocal(this.handle)));
  }
  /** Arc cosine (radians in [0, pi]); its derivative is infinite at +-1, so clamp inputs away from there. */
  acos(): Tensor {
    return new Tensor(run('acos', () => native.acos(this.handle)));
  }
  sin(): Tensor {
    return new Tensor(run('sin', () => native.sin(this.handle)));
  }
  cos(): Tensor {
    return new Tensor(run('cos', () => native.cos(this.handle)));
  }
  sign(): Tensor {
    return new Tensor(run('sign', () => native.sign(this.handle)));
  }
  floor(): Tensor {
    return new Tensor(run('floor', () => native.floor(this.handle)));
  }
  ceil(): Tensor {
    return new Tensor(run('ceil', () => native.ceil(this.handle)));
  }
  round(): Tensor {
    return new Tensor(run('round', () => native.round(this.handle)));
  }
  isnan(): Tensor {
    return new Tensor(native.isnan(this.handle));
  }
  isfinite(): Tensor {
    return new Tensor(native.isfinite(this.handle));
  }
  clamp(min?: number, max?: number): Tensor {
    if (min === undefined && max === undefined)
      throw new EngineError('clamp', 'give at least one of min and max');
    return new Tensor(run('clamp', () => native.clamp(this.handle, min ?? null, max ?? null)));
  }
  lerp(end: Tensor, weight: number): Tensor {
    return new Tensor(run('lerp', () => native.lerp(this.handle, end.handle, weight)));
  }

  // ---- activations ----
  relu(): Tensor {
    return new Tensor(run('relu', () => native.relu(this.handle)));
  }
  leakyRelu(negativeSlope = 0.01): Tensor {
    return new Tensor(run('leakyRelu', () => native.leakyRelu(this.handle, negativeSlope)));
  }
  sigmoid(): Tensor {
    return new Tensor(run('sigmoid', () => native.sigmoid(this.handle)));
  }
  tanh(): Tensor {
    return new Tensor(run('tanh', () => native.tanh(this.handle)));
  }
  silu(): Tensor {
    return new Tensor(run('silu', () => native.silu(this.handle)));
  }
  gelu(approximate: 'none' | 'tanh' = 'none'): Tensor {
    return new Tensor(run('gelu', () => native.gelu(this.handle, approximate === 'tanh')));
  }
  softplus(beta = 1, threshold = 20): Tensor {
    return new Tensor(run('softplus', () => native.softplus(this.handle, beta, threshold)));
  }

  // ---- reductions: dims omitted means all elements ----
  sum(dims?: Dims, keepdim = false, dtype?: DType): Tensor {
    const code = dtype === undefined ? null : dtypeCode(dtype);
    return new Tensor(run('sum', () => native.sum(this.handle, dimsOrNull(dims), keepdim, code)));
  }
  mean(dims?: Dims, keepdim = false): Tensor {
    return new Tensor(run('mean', () => native.mean(this.handle, dimsOrNull(dims), keepdim)));
  }
  prod(dim?: number, keepdim = false): Tensor {
    return new Tensor(run('prod', () => native.prod(this.handle, dim ?? null, keepdim)));
  }
  /** Variance; correction 1 is the unbiased estimator (PyTorch's default), 0 the population variance. */
  var(
    dims?: Dims,
    { correction = 1, keepdim = false }: { correction?: number; keepdim?: boolean } = {},
  ): Tensor {
    return new Tensor(run('var', () => native.var(this.handle, dimsOrNull(dims), correction, keepdim)));
  }
  std(
    dims?: Dims,
    { correction = 1, keepdim = false }: { correction?: number; keepdim?: boolean } = {},
  ): Tensor {
    return new Tensor(run('std', () => native.std(this.handle, dimsOrNull(dims), correction, keepdim)));
  }
  /** Maximum of all elements, or along dim: values and indices. */
  max(): Tensor;
  max(dim: number, keepdim?: boolean): { values: Tensor; indices: Tensor };
  max(dim?: number, keepdim = false): Tensor | { values: Tensor; indices: Tensor } {
    if (dim === undefined) return new Tensor(run('max', () => native.max(this.handle)));
    const [v, i] = run('max', () => native.max(this.handle, dim, keepdim));
    return { values: new Tensor(v), indices: new Tensor(i) };
  }
  min(): Tensor;
  min(dim: number, keepdim?: boolean): { values: Tensor; indices: Tensor };
  min(dim?: number, keepdim = false): Tensor | { values: Tensor; indices: Tensor } {
    if (dim === undefined) return new Tensor(run('min', () => native.min(this.handle)));
    const [v, i] = run('min', () => native.min(this.handle, dim, keepdim));
    return { values: new Tensor(v), indices: new Tensor(i) };
  }
  argmax(dim?: number, keepdim = false): Tensor {
    return new Tensor(run('argmax', () => native.argmax(this.handle, dim ?? null, keepdim)));
  }
  argmin(dim?: number, keepdim = false): Tensor {
    return new Tensor(run('argmin', () => native.argmin(this.handle, dim ?? null, keepdim)));
  }
  norm(p = 2, dims?: Dims, keepdim = false): Tensor {
    return new Tensor(run('norm', () => native.norm(this.handle, p, dimsOrNull(dims), keepdim)));
  }
  logsumexp(dims: Dims, keepdim = false): Tensor {
    return new Tensor(run('logsumexp', () => native.logsumexp(this.handle, dims, keepdim)));
  }
  cumsum(dim: number): Tensor {
    return new Tensor(run('cumsum', () => native.cumsum(this.handle, dim)));
  }
  all(): Tensor {
    return new Tensor(native.all(this.handle));
  }
  any(): Tensor {
    return new Tensor(native.any(this.handle));
  }
  topk(k: number, dim = -1, largest = true): { values: Tensor; indices: Tensor } {
    const [v, i] = run('topk', () => native.topk(this.handle, k, dim, largest));
    return { values: new Tensor(v), indices: new Tensor(i) };
  }
  sort(dim = -1, descending = false): { values: Tensor; indices: Tensor } {
    const [v, i] = run('sort', () => native.sort(this.handle, dim, descending));
    return { values: new Tensor(v), indices: new Tensor(i) };
  }

  // ---- matrix products ----
  matmul(other: Tensor): Tensor {
    return new Tensor(run('matmul', () => native.matmul(this.handle, other.handle)));
  }
  mm(other: Tensor): Tensor {
    return new Tensor(run('mm', () => native.mm(this.handle, other.handle)));
  }
  bmm(other: Tensor): Tensor {
    return new Tensor(run('bmm', () => native.bmm(this.handle, other.handle)));
  }
  outer(other: Tensor): Tensor {
    return new Tensor(run('outer', () => native.outer(this.handle, other.handle)));
  }

  // ---- autograd ----
  get requiresGrad(): boolean {
    return native.requiresGrad(this.handle);
  }
  set requiresGrad(on: boolean) {
    run('requiresGrad', () => native.setRequiresGrad(this.handle, on));
  }
  /** Sets requiresGrad and returns this, for chaining. */
  requiresGrad_(on = true): this {
    this.requiresGrad = on;
    return this;
  }
  get isLeaf(): boolean {
    return native.isLeaf(this.handle);
  }
  /** The gradient accumulated by backward(), or null. */
  get grad(): Tensor | null {
    const g = native.gradOf(this.handle);
    return g === null ? null : new Tensor(g);
  }
  set grad(g: Tensor | null) {
    run('grad', () => native.setGrad(this.handle, g === null ? null : g.handle));
  }
  detach(): Tensor {
    return new Tensor(native.detach(this.handle));
  }
  backward(
    gradient?: Tensor,
    { retainGraph, createGraph = false }: { retainGraph?: boolean; createGraph?: boolean } = {},
  ): void {
    run('backward', () => native.backward(this.handle, gradient?.handle, retainGraph ?? null, createGraph));
  }

  // ---- in-place updates (optimizers, running statistics); they return this ----
  add_(other: Operand, alpha = 1): this {
    run('add_', () => native.add_(this.handle, operand(other), alpha));
    return this;
  }
  sub_(other: Operand, alpha = 1): this {
    run('sub_', () => native.sub_(this.handle, operand(other), alpha));
    return this;
  }
  mul_(other: Operand): this {
    run('mul_', () => native.mul_(this.handle, operand(other)));
    return this;
  }
  div_(other: Operand): this {
    run('div_', () => native.div_(this.handle, operand(other)));
    return this;
  }
  /** this += value * t1 * t2 */
  addcmul_(t1: Tensor, t2: Tensor, value = 1): this {
    run('addcmul_', () => native.addcmul_(this.handle, t1.handle, t2.handle, value));
    return this;
  }
  /** this += value * t1 / t2 */
  addcdiv_(t1: Tensor, t2: Tensor, value = 1): this {
    run('addcdiv_', () => native.addcdiv_(this.handle, t1.handle, t2.handle, value));
    return this;
  }
  lerp_(end: Tensor, weight: number): this {
    run('lerp_', () => native.lerp_(this.handle, end.handle, weight));
    return this;
  }
  copy_(src: Tensor): this {
    run('copy_', () => native.copy_(this.handle, src.handle));
    return this;
  }
  zero_(): this {
    run('zero_', () => native.zero_(this.handle));
    return this;
  }
  fill_(value: number): this {
    run('fill_', () => native.fill_(this.handle, value));
    return this;
  }
  sqrt_(): this {
    run('sqrt_', () => native.sqrt_(this.handle));
    return this;
  }
  clamp_(min?: number, max?: number): this {
    run('clamp_', () => native.clamp_(this.handle, min ?? null, max ?? null));
    return this;
  }
  maximum_(other: Tensor): this {
    run('maximum_', () => native.maximum_(this.handle, other.handle));
    return this;
  }
}

export function isTensor(x: unknown): x is Tensor {
  return x instanceof Tensor;
}
