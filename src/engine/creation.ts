// Tensor creation: constants, ranges, random draws, and JavaScript data.
import { checkDevice, type Device } from './device.js';
import { dtypeCode, dtypeOfArray, type DType, type TypedArray } from './dtype.js';
import { EngineError, run } from './errors.js';
import { native } from './native.js';
import type { Generator } from './random.js';
import { Tensor, type NestedArray } from './tensor.js';

export interface CreateOptions {
  dtype?: DType;
  device?: Device;
}
export interface RandomOptions extends CreateOptions {
  generator?: Generator;
}

function checkShape(op: string, shape: readonly number[]): readonly number[] {
  for (const s of shape) {
    if (!Number.isInteger(s) || s < 0) {
      throw new EngineError(op, `shape must be non-negative integers, got [${shape.join(', ')}]`);
    }
  }
  return shape;
}

function opts(op: string, o: CreateOptions, defaultDtype: DType = 'float32'): [number, Device] {
  return [dtypeCode(o.dtype ?? defaultDtype), checkDevice(op, o.device)];
}

export function zeros(shape: readonly number[], o: CreateOptions = {}): Tensor {
  const [d, dev] = opts('zeros', o);
  return new Tensor(run('zeros', () => native.zeros(checkShape('zeros', shape), d, dev)));
}
export function ones(shape: readonly number[], o: CreateOptions = {}): Tensor {
  const [d, dev] = opts('ones', o);
  return new Tensor(run('ones', () => native.ones(checkShape('ones', shape), d, dev)));
}
export function full(shape: readonly number[], value: number, o: CreateOptions = {}): Tensor {
  const [d, dev] = opts('full', o);
  return new Tensor(run('full', () => native.full(checkShape('full', shape), value, d, dev)));
}
export function empty(shape: readonly number[], o: CreateOptions = {}): Tensor {
  const [d, dev] = opts('empty', o);
  return new Tensor(run('empty', () => native.empty(checkShape('empty', shape), d, dev)));
}
export function zerosLike(t: Tensor, o: CreateOptions = {}): Tensor {
  return zeros(t.shape, { dtype: o.dtype ?? t.dtype, device: o.device ?? (t.device as Device) });
}
export function onesLike(t: Tensor, o: CreateOptions = {}): Tensor {
  return ones(t.shape, { dtype: o.dtype ?? t.dtype, device: o.device ?? (t.device as Device) });
}
export function fullLike(t: Tensor, value: number, o: CreateOptions = {}): Tensor {
  return full(t.shape, value, { dtype: o.dtype ?? t.dtype, device: o.device ?? (t.device as Device) });
}

/** Values start, start+step, ... below end (int64 unless a dtype is given). */
export function arange(start: number, end?: number, step = 1, o: CreateOptions = {}): Tensor {
  if (end === undefined) [start, end] = [0, start];
  if (step === 0) throw new EngineError('arange', 'step must not be zero');
  const allInt = Number.isInteger(start) && Number.isInteger(end) && Number.isInteger(step);
  const [d, dev] = opts('arange', o, allInt ? 'int64' : 'float32');
  return new Tensor(run('arange', () => native.arange(start, end as number, step, d, dev)));
}
export function linspace(start: number, end: number, steps: number, o: CreateOptions = {}): Tensor {
  const [d, dev] = opts('linspace', o);
  return new Tensor(run('linspace', () => native.linspace(start, end, steps, d, dev)));
}
export function eye(n: number, m = n, o: CreateOptions = {}): Tensor {
  const [d, dev] = opts('eye', o);
  return new Tensor(run('eye', () => native.eye(n, m, d, dev)));
}

/** Uniform on [0, 1). */
export function rand(shape: readonly number[], o: RandomOptions = {}): Tensor {
  const [d, dev] = opts('rand', o);
  return new Tensor(run('rand', () => native.rand(checkShape('rand', shape), d, dev, o.generator?.handle)));
}
/** Standard normal. */
export function randn(shape: readonly number[], o: RandomOptions = {}): Tensor {
  const [d, dev] = opts('randn', o);
  return new Tensor(
    run('randn', () => native.randn(checkShape('randn', shape), d, dev, o.generator?.handle)),
  );
}
/** Integers uniform on [low, high). */
export function randint(low: number, high: number, shape: readonly number[], o: RandomOptions = {}): Tensor {
  if (!(high > low)) throw new EngineError('randint', `high (${high}) must be greater than low (${low})`);
  const [d, dev] = opts('randint', o, 'int64');
  return new Tensor(
    run('randint', () =>
      native.randint(low, high, checkShape('randint', shape), d, dev, o.generator?.handle),
    ),
  );
}
/** A random permutation of 0..n-1. */
export function randperm(n: number, o: RandomOptions = {}): Tensor {
  const [d, dev] = opts('randperm', o, 'int64');
  return new Tensor(run('randperm', () => native.randperm(n, d, dev, o.generator?.handle)));
}
/** 0/1 draws with the given per-element probabilities (same dtype as p). */
export function bernoulli(p: Tensor, generator?: Generator): Tensor {
  return new Tensor(run('bernoulli', () => native.bernoulli(p.handle, generator?.handle)));
}

function inferShape(data: NestedArray, path: string): number[] {
  if (!Array.isArray(data)) return [];
  if (data.length === 0) return [0];
  const inner = inferShape(data[0], `${path}[0]`);
  for (let i = 1; i < data.length; i++) {
    const s = inferShape(data[i], `${path}[${i}]`);
    if (s.length !== inner.length || s.some((v, k) => v !== inner[k])) {
      throw new EngineError(
        'tensor',
        `ragged nested array: ${path}[${i}] has shape [${s.join(', ')}] but ${path}[0] has [${inner.join(', ')}]`,
      );
    }
  }
  return [data.length, ...inner];
}

/**
 * A tensor from JavaScript data: a number, nested arrays, or a typed array with an
 * explicit shape. Nested numbers default to float32 (JavaScript has no integer type);
 * nested booleans give bool; typed arrays keep their element type unless dtype says otherwise.
 */
export function tensor(
  data: NestedArray | TypedArray,
  o: CreateOptions & { shape?: readonly number[] } = {},
): Tensor {
  let values: TypedArray;
  let shape: readonly number[];
  if (ArrayBuffer.isView(data)) {
    values = data;
    shape = o.shape ?? [data.length];
  } else {
    shape = o.shape ?? inferShape(data, 'data');
    const flat = (Array.isArray(data) ? (data as unknown[]).flat(Infinity) : [data]) as (number | boolean)[];
    const bools = flat.length > 0 && typeof flat[0] === 'boolean';
    for (let i = 0; i < flat.length; i++) {
      const v = flat[i];
      if (typeof v !== (bools ? 'boolean' : 'number')) {
        throw new EngineError(
          'tensor',
          `element ${i} is ${JSON.stringify(v)}; expected ${bools ? 'booleans' : 'numbers'} throughout`,
        );
      }
    }
    values = bools ? Uint8Array.from(flat, (v) => (v ? 1 : 0)) : Float64Array.from(flat as number[]);
  }
  const natural: DType = ArrayBuffer.isView(data)
    ? dtypeOfArray(data)
    : values instanceof Uint8Array
      ? 'bool'
      : 'float64';
  const target = o.dtype ?? (ArrayBuffer.isView(data) ? natural : natural === 'bool' ? 'bool' : 'float32');
  checkShape('tensor', shape);
  const expected = shape.reduce((a, b) => a * b, 1);
  if (expected !== values.length) {
    throw new EngineError(
      'tensor',
      `shape [${shape.join(', ')}] needs ${expected} elements but the data has ${values.length}`,
    );
  }
  const base = new Tensor(run('tensor', () => native.fromData(values, shape, dtypeCode(natural))));
  if (target === natural && (o.device === undefined || o.device === 'cpu')) return base;
  const converted = base.to({ dtype: target, device: o.device });
  base.dispose();
  return converted;
}
