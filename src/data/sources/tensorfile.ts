// Custom data as one safetensors file: `train.images` [N, C, H, W] and
// `train.labels` [N] (plus `test.images`/`test.labels`), or `images`/`labels`
// split by seed. Images are uint8 (0..255) or floating point in [0, 1]; class
// names may be given as JSON in the metadata key `classes`.
import { z } from 'zod';
import * as E from '../../engine/index.js';
import { DataError } from '../errors.js';
import { checkDataFile } from '../files.js';
import type { RawDataset, RawSplit } from './raw.js';

/** Metadata `classes`: a JSON list of class names (anything else would reach meta.json as is). */
const classesSchema = z.array(z.string().min(1)).min(1);

function parseClasses(path: string, json: string): string[] {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    value = undefined;
  }
  const parsed = classesSchema.safeParse(value);
  if (parsed.success) return parsed.data;
  throw new DataError(
    `${path}: metadata 'classes' must be a JSON list of class names, e.g. ["cat", "dog"] (label i names class i); got ${JSON.stringify(json.slice(0, 80))}`,
  );
}

/** Refuses NaN and ±Infinity, which pass a [0, 1] range check (NaN compares false) and become 0. */
function checkFinite(path: string, images: E.Tensor, what: string): void {
  const bad = images.isfinite().logicalNot().flatten();
  const count = bad.sum().item();
  if (count === 0) return;
  const first = bad.to('uint8').argmax().item(); // argmax returns the first maximum
  const perImage = images.numel / images.size(0);
  throw new DataError(
    `${path}: ${what} images hold ${count} non-finite values (NaN or ±Infinity); the first is element ${first} (image ${Math.floor(first / perImage)}). Replace them (e.g. numpy.nan_to_num or torch.nan_to_num) before saving`,
  );
}

/**
 * Labels as class indices, checked one by one: a float label would otherwise be truncated
 * (1.5 -> 1). A loop, not a zod array schema, so 100k+ labels stop at the first bad one.
 */
function toLabels(path: string, labels: E.Tensor, name: string, k: number | null): Int32Array {
  const values = labels.toNumbers();
  const out = new Int32Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const y = values[i];
    if (!Number.isInteger(y) || y < 0 || y > 2 ** 31 - 1)
      throw new DataError(
        `${path}: ${name}[${i}] is ${y}: labels must be integer class indices 0..k-1 (store them as int64)`,
      );
    if (k !== null && y >= k)
      throw new DataError(
        `${path}: ${name}[${i}] is ${y}, outside the ${k} classes 0..${k - 1} of metadata 'classes': add the missing class names or fix the label`,
      );
    out[i] = y;
  }
  return out;
}

function toRaw(
  path: string,
  images: E.Tensor,
  labels: E.Tensor,
  names: { images: string; labels: string; what: string },
  k: number | null,
): RawSplit {
  const { what } = names;
  if (images.ndim !== 4)
    throw new DataError(`${path}: ${what} images must be [N, C, H, W], got [${images.shape.join(', ')}]`);
  if (labels.ndim !== 1 || labels.size(0) !== images.size(0)) {
    throw new DataError(
      `${path}: ${images.size(0)} ${what} images but labels of shape [${labels.shape.join(', ')}]`,
    );
  }
  const pixels = E.tidy(() => {
    if (images.dtype === 'uint8') return images.toArray() as Uint8Array;
    if (E.isFloating(images.dtype)) checkFinite(path, images, what);
    const lo = images.min().item();
    const hi = images.max().item();
    if (lo < 0 || hi > 1)
      throw new DataError(
        `${path}: floating-point ${what} images must lie in [0, 1], found values in [${lo}, ${hi}]`,
      );
    return images.mul(255).round().to('uint8').toArray() as Uint8Array;
  });
  return { pixels, labels: toLabels(path, labels, names.labels, k) };
}

/** The largest label of the splits (a loop: Math.max(...labels) overflows the stack past ~125k). */
function maxLabel(...splits: RawSplit[]): number {
  let max = -1;
  for (const s of splits) for (let i = 0; i < s.labels.length; i++) if (s.labels[i] > max) max = s.labels[i];
  return max;
}

const SPLIT_NAMES = {
  train: { images: 'train.images', labels: 'train.labels', what: 'train' },
  test: { images: 'test.images', labels: 'test.labels', what: 'test' },
  all: { images: 'images', labels: 'labels', what: 'the' },
};

/** Class names '0'..'k-1' for files without metadata 'classes': k is the largest label + 1. */
function numberedClasses(path: string, train: RawSplit, test: RawSplit): string[] {
  const k = maxLabel(train, test) + 1;
  // Every class needs a training image, so a label past that is a mistake (and would
  // otherwise make up to 2^31 class names). An empty train split is reported by the registry.
  if (train.labels.length > 0 && k > train.labels.length)
    throw new DataError(
      `${path}: label ${k - 1} asks for ${k} classes but there are only ${train.labels.length} training images: labels must number the classes 0..k-1`,
    );
  return Array.from({ length: k }, (_, i) => String(i));
}

function readSplits(
  path: string,
  tensors: Record<string, E.Tensor>,
  k: number | null,
  o: { seed?: number; testFraction?: number },
): { train: RawSplit; test: RawSplit; shape: number[] } {
  const { train: tr, test: te } = SPLIT_NAMES;
  if (tensors[tr.images] && tensors[tr.labels] && tensors[te.images] && tensors[te.labels]) {
    const [a, b] = [tensors[tr.images].shape.slice(1), tensors[te.images].shape.slice(1)];
    if (a.length !== b.length || a.some((v, i) => v !== b[i]))
      throw new DataError(
        `${path}: test images are [${b.join(', ')}] each but train images [${a.join(', ')}]; store both splits at one size`,
      );
    return {
      train: toRaw(path, tensors[tr.images], tensors[tr.labels], tr, k),
      test: toRaw(path, tensors[te.images], tensors[te.labels], te, k),
      shape: tensors[tr.images].shape.slice(1),
    };
  }
  if (!tensors.images || !tensors.labels) {
    throw new DataError(
      `${path} must hold tensors train.images, train.labels, test.images, test.labels (or images and labels); found: ${Object.keys(tensors).join(', ') || 'none'}`,
    );
  }
  const all = toRaw(path, tensors.images, tensors.labels, SPLIT_NAMES.all, k);
  const shape = tensors.images.shape.slice(1);
  const n = all.labels.length;
  const perm = E.tidy(() => E.randperm(n, { generator: new E.Generator(o.seed ?? 0) }).toNumbers());
  const nTest = Math.max(1, Math.round(n * (o.testFraction ?? 0.2)));
  const size = shape.reduce((a, b) => a * b, 1);
  const take = (idx: number[]): RawSplit => {
    const pixels = new Uint8Array(idx.length * size);
    idx.forEach((i, j) => pixels.set(all.pixels.subarray(i * size, (i + 1) * size), j * size));
    return { pixels, labels: Int32Array.from(idx, (i) => all.labels[i]) };
  };
  return { test: take(perm.slice(0, nTest)), train: take(perm.slice(nTest)), shape };
}

export function readTensorFile(path: string, o: { seed?: number; testFraction?: number } = {}): RawDataset {
  // A FIFO or a device would block the read or never end: check before the engine reads it.
  checkDataFile(path);
  const { tensors, metadata } = E.loadSafetensors(path);
  try {
    const given = metadata.classes === undefined ? null : parseClasses(path, metadata.classes);
    const { train, test, shape } = readSplits(path, tensors, given?.length ?? null, o);
    return {
      name: `file:${path}`,
      classes: given ?? numberedClasses(path, train, test),
      shape: shape as [number, number, number],
      train,
      test,
      files: [path],
      stats: null,
    };
  } finally {
    for (const t of Object.values(tensors)) t.dispose();
  }
}
