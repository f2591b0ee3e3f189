// Loads the C++ addon (compiled to dist/src/engine, hence three levels up to the
// package root). Only the engine talks to it; everything else uses Tensor.
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Opaque handle of a libtorch tensor owned by JavaScript. */
export type Handle = { readonly __tensorHandle: unique symbol };
/** Opaque handle of a libtorch CPU generator. */
export type GeneratorHandle = { readonly __generatorHandle: unique symbol };
/** A c10d process group (dist.cc). */
export type GroupHandle = { readonly __groupHandle: unique symbol };

type H = Handle;
type OptH = Handle | null | undefined;
type Gen = GeneratorHandle | null | undefined;
type Num = number;
type Ints = number | readonly number[];
type Operand = H | number;
type Dev = string | null | undefined;

export interface AllocatorStats {
  mode: 'caching' | 'mallopt' | 'system';
  inUseBytes: number;
  peakInUseBytes: number;
  cachedBytes: number;
  cacheLimitBytes: number;
  allocations: number;
  cacheHits: number;
}

/** The addon's exports, argument for argument (see native/src/*.cc). */
export interface NativeModule {
  // creation
  zeros(shape: Ints, dtype: Num, device: Dev): H;
  ones(shape: Ints, dtype: Num, device: Dev): H;
  full(shape: Ints, value: Num, dtype: Num, device: Dev): H;
  empty(shape: Ints, dtype: Num, device: Dev): H;
  arange(start: Num, end: Num, step: Num, dtype: Num, device: Dev): H;
  linspace(start: Num, end: Num, steps: Num, dtype: Num, device: Dev): H;
  eye(n: Num, m: Num, dtype: Num, device: Dev): H;
  rand(shape: Ints, dtype: Num, device: Dev, gen: Gen): H;
  randn(shape: Ints, dtype: Num, device: Dev, gen: Gen): H;
  randint(low: Num, high: Num, shape: Ints, dtype: Num, device: Dev, gen: Gen): H;
  randperm(n: Num, dtype: Num, device: Dev, gen: Gen): H;
  bernoulli(p: H, gen: Gen): H;
  generatorNew(seed: Num): GeneratorHandle;
  generatorGetState(gen: GeneratorHandle): H;
  generatorSetState(gen: GeneratorHandle, state: H): void;
  manualSeed(seed: Num): void;
  fromData(data: ArrayBufferView, shape: Ints, dtype: Num): H;
  toData(t: H): ArrayBuffer;
  item(t: H): number | boolean;
  // metadata
  shape(t: H): number[];
  dtype(t: H): number;
  device(t: H): string;
  isDisposed(t: H): boolean;
  dispose(t: H): void;
  reportExternal(t: H): void;
  reportedExternalBytes(): number;
  isContiguous(t: H): boolean;
  isChannelsLast(t: H): boolean;
  to(t: H, dtype: Num | null, device: Dev): H;
  clone(t: H): H;
  contiguous(t: H, channelsLast: boolean): H;
  // shape
  reshape(t: H, shape: Ints): H;
  view(t: H, shape: Ints): H;
  permute(t: H, dims: Ints): H;
  transpose(t: H, a: Num, b: Num): H;
  flatten(t: H, start: Num, end: Num): H;
  squeeze(t: H, dim: Num | null): H;
  unsqueeze(t: H, dim: Num): H;
  expand(t: H, shape: Ints): H;
  repeat(t: H, reps: Ints): H;
  cat(ts: H[], dim: Num): H;
  stack(ts: H[], dim: Num): H;
  split(t: H, sizes: Ints, dim: Num): H[];
  chunk(t: H, n: Num, dim: Num): H[];
  unbind(t: H, dim: Num): H[];
  narrow(t: H, dim: Num, start: Num, length: Num): H;
  slice(t: H, dim: Num, start: Num | null, end: Num | null, step: Num): H;
  select(t: H, dim: Num, index: Num): H;
  indexSelect(t: H, dim: Num, index: H): H;
  gather(t: H, dim: Num, index: H): H;
  scatter(t: H, dim: Num, index: H, src: Operand): H;
  scatterAdd(t: H, dim: Num, index: H, src: H): H;
  indexAdd(t: H, dim: Num, index: H, src: H): H;
  maskedFill(t: H, mask: H, value: Num): H;
  maskedSelect(t: H, mask: H): H;
  where(cond: H, a: Operand, b: Operand): H;
  nonzero(t: H): H;
  flip(t: H, dims: Ints): H;
  roll(t: H, shifts: Ints, dims: Ints): H;
  pad(t: H, pads: Ints, mode: string, value: Num): H;
  tril(t: H, k: Num): H;
  triu(t: H, k: Num): H;
  diag(t: H, k: Num): H;
  diagonal(t: H, offset: Num, d1: Num, d2: Num): H;
  // autograd
  requiresGrad(t: H): boolean;
  setRequiresGrad(t: H, on: boolean): void;
  isLeaf(t: H): boolean;
  gradOf(t: H): H | null;
  setGrad(t: H, g: OptH): void;
  detach(t: H): H;
  grad(
    outputs: H[],
    inputs: H[],
    gradOutputs: H[] | null,
    retainGraph: boolean | null,
    createGraph: boolean,
    allowUnused: boolean,
  ): (H | null)[];
  backward(t: H, gradient: OptH, retainGraph: boolean | null, createGraph: boolean): void;
  setGradEnabled(on: boolean): boolean;
  isGradEnabled(): boolean;
  // runtime
  getNumThreads(): number;
  setNumThreads(n: Num): void;
  cudaAvailable(): boolean;
  cudaDeviceCount(): number;
  cudaSynchronize(): void;
  torchVersion(): string;
  allocatorStats(): AllocatorStats;
  allocatorEmptyCache(): void;
  allocatorSetCacheLimit(bytes: Num): void;
  allocatorResetPeak(): void;
  // distributed (c10d, Gloo)
  distInit(
    rank: Num,
    size: Num,
    timeoutMs: Num,
    kind: 'tcp' | 'file',
    address: string,
    port: Num,
    prefix: string,
  ): GroupHandle;
  distAllReduce(g: GroupHandle, tensors: H[], op: string): void;
  distBroadcast(g: GroupHandle, tensors: H[], root: Num): void;
  distAllGather(g: GroupHandle, t: H): H[];
  distBarrier(g: GroupHandle): void;
  distStoreSet(g: GroupHandle, key: string, value: string): void;
  distStoreGet(g: GroupHandle, key: string): string;
  distDestroy(g: GroupHandle): void;
  // elementwise
  add(a: H, b: Operand, alpha?: Num): H;
  sub(a: H, b: Operand, alpha?: Num): H;
  mul(a: H, b: Operand): H;
  div(a: H, b: Operand): H;
  pow(a: H, b: Operand): H;
  remainder(a: H, b: Operand): H;
  maximum(a: H, b: Operand): H;
  minimum(a: H, b: Operand): H;
  eq(a: H, b: Operand): H;
  ne(a: H, b: Operand): H;
  lt(a: H, b: Operand): H;
  le(a: H, b: Operand): H;
  gt(a: H, b: Operand): H;
  ge(a: H, b: Operand): H;
  rsub(a: H, b: Num): H;
  logicalAnd(a: H, b: H): H;
  logicalOr(a: H, b: H): H;
  logicalXor(a: H, b: H): H;
  logicalNot(a: H): H;
  neg(a: H): H;
  abs(a: H): H;
  exp(a: H): H;
  log(a: H): H;
  log1p(a: H): H;
  sqrt(a: H): H;
  rsqrt(a: H): H;
  square(a: H): H;
  reciprocal(a: H): H;
  sin(a: H): H;
  acos(a: H): H;
  cos(a: H): H;
  sign(a: H): H;
  floor(a: H): H;
  ceil(a: H): H;
  round(a: H): H;
  isnan(a: H): H;
  isfinite(a: H): H;
  relu(a: H): H;
  sigmoid(a: H): H;
  tanh(a: H): H;
  silu(a: H): H;
  gelu(a: H, tanhApproximation: boolean): H;
  leakyRelu(a: H, slope: Num): H;
  softplus(a: H, beta: Num, threshold: Num): H;
  clamp(a: H, min: Num | null, max: Num | null): H;
  lerp(a: H, b: H, weight: Num): H;
  // reductions
  sum(t: H, dims: Ints | null, keepdim: boolean, dtype: Num | null): H;
  mean(t: H, dims: Ints | null, keepdim: boolean): H;
  prod(t: H, dim: Num | null, keepdim: boolean): H;
  var(t: H, dims: Ints | null, correction: Num, keepdim: boolean): H;
  std(t: H, dims: Ints | null, correction: Num, keepdim: boolean): H;
  max(t: H): H;
  max(t: H, dim: Num, keepdim: boolean): [H, H];
  min(t: H): H;
  min(t: H, dim: Num, keepdim: boolean): [H, H];
  argmax(t: H, dim: Num | null, keepdim: boolean): H;
  argmin(t: H, dim: Num | null, keepdim: boolean): H;
  norm(t: H, p: Num, dims: Ints | null, keepdim: boolean): H;
  logsumexp(t: H, dims: Ints, keepdim: boolean): H;
  cumsum(t: H, dim: Num): H;
  all(t: H): H;
  any(t: H): H;
  topk(t: H, k: Num, dim: Num, largest: boolean): [H, H];
  sort(t: H, dim: Num, descending: boolean): [H, H];
  // in place
  add_(a: H, b: Operand, alpha?: Num): void;
  sub_(a: H, b: Operand, alpha?: Num): void;
  mul_(a: H, b: Operand): void;
  div_(a: H, b: Operand): void;
  addcmul_(a: H, t1: H, t2: H, value: Num): void;
  addcdiv_(a: H, t1: H, t2: H, value: Num): void;
  lerp_(a: H, b: H, weight: Num): void;
  copy_(a: H, src: H): void;
  zero_(a: H): void;
  fill_(a: H, value: Num): void;
  sqrt_(a: H): void;
  clamp_(a: H, min: Num | null, max: Num | null): void;
  maximum_(a: H, b: H): void;
  // linear algebra
  matmul(a: H, b: H): H;
  mm(a: H, b: H): H;
  bmm(a: H, b: H): H;
  outer(a: H, b: H): H;
  einsum(eq: string, ts: H[]): H;
  cholesky(a: H, upper: boolean): H;
  choleskySolve(b: H, l: H, upper: boolean): H;
  solveTriangular(a: H, b: H, upper: boolean, left: boolean, unitriangular: boolean): H;
  solve(a: H, b: H): H;
  inv(a: H): H;
  pinv(a: H, rtol: Num | null, hermitian: boolean): H;
  eigh(a: H, upper: boolean): [H, H];
  svd(a: H, fullMatrices: boolean): [H, H, H];
  qr(a: H, complete: boolean): [H, H];
  slogdet(a: H): [H, H];
  det(a: H): H;
  trace(a: H): H;
  // nn
  conv2d(x: H, w: H, b: OptH, stride: Ints, padding: Ints, dilation: Ints, groups: Num): H;
  convTranspose2d(
    x: H,
    w: H,
    b: OptH,
    stride: Ints,
    padding: Ints,
    outputPadding: Ints,
    groups: Num,
    dilation: Ints,
  ): H;
  linear(x: H, w: H, b: OptH): H;
  avgPool2d(x: H, kernel: Ints, stride: Ints, padding: Ints, ceilMode: boolean, countIncludePad: boolean): H;
  maxPool2d(x: H, kernel: Ints, stride: Ints, padding: Ints, dilation: Ints, ceilMode: boolean): H;
  adaptiveAvgPool2d(x: H, size: Ints): H;
  batchNorm(
    x: H,
    runMean: OptH,
    runVar: OptH,
    w: OptH,
    b: OptH,
    training: boolean,
    momentum: Num,
    eps: Num,
  ): H;
  groupNorm(x: H, groups: Num, w: OptH, b: OptH, eps: Num): H;
  normReluPool(x: H, groups: Num, w: H, b: H, eps: Num): H;
  instanceNorm(
    x: H,
    runMean: OptH,
    runVar: OptH,
    w: OptH,
    b: OptH,
    useInputStats: boolean,
    momentum: Num,
    eps: Num,
  ): H;
  layerNorm(x: H, shape: Ints, w: OptH, b: OptH, eps: Num): H;
  softmax(x: H, dim: Num): H;
  logSoftmax(x: H, dim: Num): H;
  crossEntropy(x: H, target: H, weight: OptH, reduction: string, ignoreIndex: Num, labelSmoothing: Num): H;
  nllLoss(x: H, target: H, weight: OptH, reduction: string, ignoreIndex: Num): H;
  mseLoss(a: H, b: H, reduction: string): H;
  l1Loss(a: H, b: H, reduction: string): H;
  klDiv(input: H, target: H, reduction: string, logTarget: boolean): H;
  oneHot(t: H, n: Num): H;
  interpolate(x: H, size: Ints, mode: string, alignCorners: boolean): H;
  affineGrid(theta: H, size: Ints, alignCorners: boolean): H;
  gridSample(x: H, grid: H, mode: string, paddingMode: string, alignCorners: boolean): H;
  pixelShuffle(x: H, r: Num): H;
  pixelUnshuffle(x: H, r: Num): H;
}

const ADDON = fileURLToPath(new URL('../../../native/build/Release/distillery_native.node', import.meta.url));

function load(): NativeModule {
  if (!existsSync(ADDON)) {
    throw new Error(
      `Distillery's native engine is not built (${ADDON} is missing). Run \`bash install.sh\`, or \`npm run build:native\` if libtorch is already installed.`,
    );
  }
  try {
    return createRequire(import.meta.url)(ADDON) as NativeModule;
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    throw new Error(
      `Distillery's native engine failed to load: ${message}\n` +
        'If libtorch is missing, install it with `apt-get install libtorch-dev` (as root) or rebuild against ' +
        'another distribution with `LIBTORCH=/path/to/libtorch npm run build:native`.',
    );
  }
}

export const native: NativeModule = load();

// libtorch's default thread count depends on how it was built (Debian's starts
// with one); Distillery uses every core the process may run on, or OMP_NUM_THREADS when it is set
// (torchrun and `distillery launch` set it per rank). setNumThreads() changes it.
const ompThreads = Number(process.env.OMP_NUM_THREADS);
native.setNumThreads(Number.isInteger(ompThreads) && ompThreads > 0 ? ompThreads : availableParallelism());
