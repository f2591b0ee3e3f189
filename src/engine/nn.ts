// Neural-network functional ops (the torch.nn.functional of Distillery).
// Shapes are checked up front so a mistake reads as what it is.
import { fullLike } from './creation.js';
import { bernoulli } from './creation.js';
import { dtypeCode, isFloating } from './dtype.js';
import { EngineError, run } from './errors.js';
import { native } from './native.js';
import type { Generator } from './random.js';
import { Tensor } from './tensor.js';

export type Reduction = 'mean' | 'sum' | 'none';
type Pair = number | readonly [number, number];

function pair(v: Pair): [number, number] {
  return typeof v === 'number' ? [v, v] : [v[0], v[1]];
}

function expectDims(op: string, what: string, t: Tensor, ndim: number, layout: string): void {
  if (t.ndim !== ndim) {
    throw new EngineError(
      op,
      `expected ${what} of ${ndim} dimensions ${layout}, got shape [${t.shape.join(', ')}]`,
    );
  }
}

export interface Conv2dOptions {
  stride?: Pair;
  padding?: Pair;
  dilation?: Pair;
  groups?: number;
}

export function conv2d(x: Tensor, weight: Tensor, bias?: Tensor | null, o: Conv2dOptions = {}): Tensor {
  expectDims('conv2d', 'input', x, 4, '[N, C, H, W]');
  expectDims('conv2d', 'weight', weight, 4, '[out, in/groups, kH, kW]');
  const groups = o.groups ?? 1;
  if (x.size(1) !== weight.size(1) * groups) {
    throw new EngineError(
      'conv2d',
      `input has ${x.size(1)} channels but weight expects ${weight.size(1) * groups} (weight shape [${weight.shape.join(', ')}], groups ${groups})`,
    );
  }
  return new Tensor(
    run('conv2d', () =>
      native.conv2d(
        x.handle,
        weight.handle,
        bias?.handle,
        pair(o.stride ?? 1),
        pair(o.padding ?? 0),
        pair(o.dilation ?? 1),
        groups,
      ),
    ),
  );
}

export function convTranspose2d(
  x: Tensor,
  weight: Tensor,
  bias?: Tensor | null,
  o: Conv2dOptions & { outputPadding?: Pair } = {},
): Tensor {
  expectDims('convTranspose2d', 'input', x, 4, '[N, C, H, W]');
  expectDims('convTranspose2d', 'weight', weight, 4, '[in, out/groups, kH, kW]');
  return new Tensor(
    run('convTranspose2d', () =>
      native.convTranspose2d(
        x.handle,
        weight.handle,
        bias?.handle,
        pair(o.stride ?? 1),
        pair(o.padding ?? 0),
        pair(o.outputPadding ?? 0),
        o.groups ?? 1,
        pair(o.dilation ?? 1),
      ),
    ),
  );
}

/** x W^T + b. */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  expectDims('linear', 'weight', weight, 2, '[out, in]');
  if (x.size(-1) !== weight.size(1)) {
    throw new EngineError(
      'linear',
      `input has ${x.size(-1)} features but weight expects ${weight.size(1)} (weight shape [${weight.shape.join(', ')}])`,
    );
  }
  return new Tensor(run('linear', () => native.linear(x.handle, weight.handle, bias?.handle)));
}

export interface PoolOptions {
  stride?: Pair;
  padding?: Pair;
  ceilMode?: boolean;
}

// Constant depthwise kernels for the non-overlapping average pool, per shape/dtype/device.
const poolKernels = new Map<string, Tensor>();

function poolKernel(channels: number, kh: number, kw: number, like: Tensor): Tensor {
  const key = `${channels}:${kh}x${kw}:${like.dtype}:${like.device}`;
  let k = poolKernels.get(key);
  if (!k) {
    k = new Tensor(
      native.full([channels, 1, kh, kw], 1 / (kh * kw), dtypeCode(like.dtype), like.device),
    ).keep();
    poolKernels.set(key, k);
  }
  return k;
}

export function avgPool2d(
  x: Tensor,
  kernel: Pair,
  o: PoolOptions & { countIncludePad?: boolean } = {},
): Tensor {
  const [kh, kw] = pair(kernel);
  const [sh, sw] = pair(o.stride ?? kernel);
  const [ph, pw] = pair(o.padding ?? 0);
  if (x.ndim === 4 && kh === sh && kw === sw && ph === 0 && pw === 0 && !o.ceilMode && isFloating(x.dtype)) {
    // Non-overlapping windows (the ConvNet's 2x2 pool) are a depthwise convolution with a
    // constant 1/(kh*kw) kernel, which oneDNN runs about 3x faster forward and backward
    // than libtorch 1.13's NCHW avg_pool2d (13 vs 37 ms on 100x128x32x32, forward and
    // backward). Results agree to float rounding.
    const c = x.size(1);
    const k = poolKernel(c, kh, kw, x);
    return new Tensor(
      run('avgPool2d', () => native.conv2d(x.handle, k.handle, null, [sh, sw], [0, 0], [1, 1], c)),
    );
  }
  return new Tensor(
    run('avgPool2d', () =>
      native.avgPool2d(
        x.handle,
        pair(kernel),
        pair(o.stride ?? kernel),
        pair(o.padding ?? 0),
        o.ceilMode ?? false,
        o.countIncludePad ?? true,
      ),
    ),
  );
}

export function maxPool2d(x: Tensor, kernel: Pair, o: PoolOptions & { dilation?: Pair } = {}): Tensor {
  return new Tensor(
    run('maxPool2d', () =>
      native.maxPool2d(
        x.handle,
        pair(kernel),
        pair(o.stride ?? kernel),
        pair(o.padding ?? 0),
        pair(o.dilation ?? 1),
        o.ceilMode ?? false,
      ),
    ),
  );
}

export function adaptiveAvgPool2d(x: Tensor, outputSize: Pair): Tensor {
  return new Tensor(run('adaptiveAvgPool2d', () => native.adaptiveAvgPool2d(x.handle, pair(outputSize))));
}

export interface NormOptions {
  weight?: Tensor | null;
  bias?: Tensor | null;
  eps?: number;
}
export interface RunningStats {
  runningMean?: Tensor | null;
  runningVar?: Tensor | null;
  momentum?: number;
}

/**
 * Batch normalization. In training mode batch statistics are used and the running
 * statistics (if given) are updated in place with `momentum`; in eval mode the
 * running statistics are used.
 */
export function batchNorm(x: Tensor, o: NormOptions & RunningStats & { training?: boolean } = {}): Tensor {
  const training = o.training ?? true;
  if (!training && (!o.runningMean || !o.runningVar)) {
    throw new EngineError('batchNorm', 'eval mode needs runningMean and runningVar');
  }
  return new Tensor(
    run('batchNorm', () =>
      native.batchNorm(
        x.handle,
        o.runningMean?.handle,
        o.runningVar?.handle,
        o.weight?.handle,
        o.bias?.handle,
        training,
        o.momentum ?? 0.1,
        o.eps ?? 1e-5,
      ),
    ),
  );
}

export function groupNorm(x: Tensor, groups: number, o: NormOptions = {}): Tensor {
  if (x.ndim < 2 || x.size(1) % groups !== 0) {
    throw new EngineError(
      'groupNorm',
      `channels (${x.ndim < 2 ? '?' : x.size(1)}) must be divisible by groups (${groups}); input shape [${x.shape.join(', ')}]`,
    );
  }
  return new Tensor(
    run('groupNorm', () =>
      native.groupNorm(x.handle, groups, o.weight?.handle, o.bias?.handle, o.eps ?? 1e-5),
    ),
  );
}

/**
 * avgPool2d(relu(groupNorm(x, groups, weight, bias)), 2): the block after each
 * convolution of the ConvNet, as one fused op on CPU (one pass over x forward and
 * one backward; derivatives of any order). Odd sizes are floored as by the pool.
 */
export function normReluPool(
  x: Tensor,
  groups: number,
  o: { weight: Tensor; bias: Tensor; eps?: number },
): Tensor {
  expectDims('normReluPool', 'input', x, 4, '[N, C, H, W]');
  return new Tensor(
    run('normReluPool', () =>
      native.normReluPool(x.handle, groups, o.weight.handle, o.bias.handle, o.eps ?? 1e-5),
    ),
  );
}

/** Instance normalization: per-sample, per-channel statistics over the spatial dims. */
export function instanceNorm(
  x: Tensor,
  o: NormOptions & RunningStats & { useInputStats?: boolean } = {},
): Tensor {
  return new Tensor(
    run('instanceNorm', () =>
      native.instanceNorm(
        x.handle,
        o.runningMean?.handle,
        o.runningVar?.handle,
        o.weight?.handle,
        o.bias?.handle,
        o.useInputStats ?? true,
        o.momentum ?? 0.1,
        o.eps ?? 1e-5,
      ),
    ),
  );
}

export function layerNorm(x: Tensor, normalizedShape: readonly number[], o: NormOptions = {}): Tensor {
  return new Tensor(
    run('layerNorm', () =>
      native.layerNorm(x.handle, normalizedShape, o.weight?.handle, o.bias?.handle, o.eps ?? 1e-5),
    ),
  );
}

/** Zeroes each element with probability p and scales the rest by 1/(1-p); identity when not training. */
export function dropout(x: Tensor, p = 0.5, o: { training?: boolean; generator?: Generator } = {}): Tensor {
  if (!(p >= 0 && p < 1)) throw new EngineError('dropout', `p must be in [0, 1), got ${p}`);
  if (!(o.training ?? true) || p === 0) return x.mul(1);
  const keepProb = fullLike(x, 1 - p);
  const mask = bernoulli(keepProb, o.generator);
  const out = x.mul(mask).div(1 - p);
  keepProb.dispose();
  mask.dispose();
  return out;
}

export function softmax(x: Tensor, dim = -1): Tensor {
  return new Tensor(run('softmax', () => native.softmax(x.handle, dim)));
}

export function logSoftmax(x: Tensor, dim = -1): Tensor {
  return new Tensor(run('logSoftmax', () => native.logSoftmax(x.handle, dim)));
}

export interface CrossEntropyOptions {
  reduction?: Reduction;
  weight?: Tensor | null;
  ignoreIndex?: number;
  labelSmoothing?: number;
}

/**
 * Cross-entropy of logits [N, C] against class indices [N] (int64) or class
 * probabilities [N, C] (soft labels, floating point).
 */
export function crossEntropy(logits: Tensor, target: Tensor, o: CrossEntropyOptions = {}): Tensor {
  expectDims('crossEntropy', 'logits', logits, 2, '[N, classes]');
  const soft = target.dtype !== 'int64';
  if (soft && (target.ndim !== 2 || target.size(0) !== logits.size(0) || target.size(1) !== logits.size(1))) {
    throw new EngineError(
      'crossEntropy',
      `soft targets must have the logits' shape [${logits.shape.join(', ')}], got [${target.shape.join(', ')}] (hard targets must be int64 class indices)`,
    );
  }
  if (!soft && (target.ndim !== 1 || target.size(0) !== logits.size(0))) {
    throw new EngineError(
      'crossEntropy',
      `class-index targets must have shape [${logits.size(0)}], got [${target.shape.join(', ')}]`,
    );
  }
  const smoothing = o.labelSmoothing ?? 0;
  if (!(smoothing >= 0 && smoothing <= 1))
    throw new EngineError('crossEntropy', `labelSmoothing must be in [0, 1], got ${smoothing}`);
  return new Tensor(
    run('crossEntropy', () =>
      native.crossEntropy(
        logits.handle,
        target.handle,
        o.weight?.handle,
        o.reduction ?? 'mean',
        o.ignoreIndex ?? -100,
        smoothing,
      ),
    ),
  );
}

export function nllLoss(
  logProbs: Tensor,
  target: Tensor,
  o: Omit<CrossEntropyOptions, 'labelSmoothing'> = {},
): Tensor {
  return new Tensor(
    run('nllLoss', () =>
      native.nllLoss(
        logProbs.handle,
        target.handle,
        o.weight?.handle,
        o.reduction ?? 'mean',
        o.ignoreIndex ?? -100,
      ),
    ),
  );
}

function checkSameShape(op: string, a: Tensor, b: Tensor): void {
  const sa = a.shape;
  const sb = b.shape;
  if (sa.length !== sb.length || sa.some((v, i) => v !== sb[i])) {
    throw new EngineError(op, `input and target shapes differ: [${sa.join(', ')}] vs [${sb.join(', ')}]`);
  }
}

export function mseLoss(input: Tensor, target: Tensor, reduction: Reduction = 'mean'): Tensor {
  checkSameShape('mseLoss', input, target);
  return new Tensor(run('mseLoss', () => native.mseLoss(input.handle, target.handle, reduction)));
}

export function l1Loss(input: Tensor, target: Tensor, reduction: Reduction = 'mean'): Tensor {
  checkSameShape('l1Loss', input, target);
  return new Tensor(run('l1Loss', () => native.l1Loss(input.handle, target.handle, reduction)));
}

/**
 * KL divergence with `input` as log-probabilities (as in PyTorch). 'batchmean'
 * divides the sum by the batch size, which is the mathematically correct KL.
 */
export function klDiv(
  input: Tensor,
  target: Tensor,
  o: { reduction?: Reduction | 'batchmean'; logTarget?: boolean } = {},
): Tensor {
  checkSameShape('klDiv', input, target);
  const reduction = o.reduction ?? 'batchmean';
  if (reduction === 'batchmean') {
    const total = new Tensor(
      run('klDiv', () => native.klDiv(input.handle, target.handle, 'sum', o.logTarget ?? false)),
    );
    const out = total.div(input.size(0));
    total.dispose();
    return out;
  }
  return new Tensor(
    run('klDiv', () => native.klDiv(input.handle, target.handle, reduction, o.logTarget ?? false)),
  );
}

export function oneHot(labels: Tensor, numClasses: number): Tensor {
  if (labels.dtype !== 'int64') throw new EngineError('oneHot', `labels must be int64, got ${labels.dtype}`);
  return new Tensor(run('oneHot', () => native.oneHot(labels.handle, numClasses)));
}

export interface InterpolateOptions {
  size?: Pair;
  scaleFactor?: number | readonly [number, number];
  mode?: 'nearest' | 'bilinear' | 'bicubic';
  alignCorners?: boolean;
}

/** Resizes [N, C, H, W] images to `size` or by `scaleFactor`. */
export function interpolate(x: Tensor, o: InterpolateOptions): Tensor {
  expectDims('interpolate', 'input', x, 4, '[N, C, H, W]');
  if ((o.size === undefined) === (o.scaleFactor === undefined)) {
    throw new EngineError('interpolate', 'give exactly one of size and scaleFactor');
  }
  const mode = o.mode ?? 'nearest';
  if (mode === 'nearest' && o.alignCorners !== undefined) {
    throw new EngineError('interpolate', 'alignCorners only applies to bilinear and bicubic modes');
  }
  let size: [number, number];
  if (o.size !== undefined) size = pair(o.size);
  else {
    const [sh, sw] =
      typeof o.scaleFactor === 'number'
        ? [o.scaleFactor, o.scaleFactor]
        : (o.scaleFactor as [number, number]);
    size = [Math.floor(x.size(2) * sh), Math.floor(x.size(3) * sw)];
  }
  return new Tensor(
    run('interpolate', () => native.interpolate(x.handle, size, mode, o.alignCorners ?? false)),
  );
}

/** Sampling grid [N, H, W, 2] for affine matrices theta [N, 2, 3] and output size [N, C, H, W]. */
export function affineGrid(theta: Tensor, size: readonly number[], alignCorners = false): Tensor {
  expectDims('affineGrid', 'theta', theta, 3, '[N, 2, 3]');
  if (size.length !== 4)
    throw new EngineError('affineGrid', `size must be [N, C, H, W], got [${size.join(', ')}]`);
  return new Tensor(run('affineGrid', () => native.affineGrid(theta.handle, size, alignCorners)));
}

export function gridSample(
  x: Tensor,
  grid: Tensor,
  o: {
    mode?: 'bilinear' | 'nearest' | 'bicubic';
    paddingMode?: 'zeros' | 'border' | 'reflection';
    alignCorners?: boolean;
  } = {},
): Tensor {
  expectDims('gridSample', 'input', x, 4, '[N, C, H, W]');
  expectDims('gridSample', 'grid', grid, 4, '[N, H, W, 2]');
  return new Tensor(
    run('gridSample', () =>
      native.gridSample(
        x.handle,
        grid.handle,
        o.mode ?? 'bilinear',
        o.paddingMode ?? 'zeros',
        o.alignCorners ?? false,
      ),
    ),
  );
}

export function pixelShuffle(x: Tensor, upscale: number): Tensor {
  return new Tensor(run('pixelShuffle', () => native.pixelShuffle(x.handle, upscale)));
}

export function pixelUnshuffle(x: Tensor, downscale: number): Tensor {
  return new Tensor(run('pixelUnshuffle', () => native.pixelUnshuffle(x.handle, downscale)));
}

/** Pads the last dimensions; pads are [left, right, top, bottom, ...] as in torch.nn.functional.pad. */
export function pad(
  x: Tensor,
  pads: readonly number[],
  o: { mode?: 'constant' | 'reflect' | 'replicate' | 'circular'; value?: number } = {},
): Tensor {
  if (pads.length % 2 !== 0 || pads.length / 2 > x.ndim) {
    throw new EngineError(
      'pad',
      `pads must hold pairs for at most ${x.ndim} dimensions, got [${pads.join(', ')}]`,
    );
  }
  return new Tensor(run('pad', () => native.pad(x.handle, pads, o.mode ?? 'constant', o.value ?? 0)));
}
