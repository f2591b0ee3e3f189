// Custom data as one safetensors file: `train.images` [N, C, H, W] and
// `train.labels` [N] (plus `test.images`/`test.labels`), or `images`/`labels`
// split by seed. Images are uint8 (0..255) or floating point in [0, 1]; class
// names may be given as JSON in the metadata key `classes`.
import * as E from '../../engine/index.js';
import { DataError } from '../errors.js';
import type { RawDataset, RawSplit } from './raw.js';

function toRaw(path: string, images: E.Tensor, labels: E.Tensor, what: string): RawSplit {
  if (images.ndim !== 4)
    throw new DataError(`${path}: ${what} images must be [N, C, H, W], got [${images.shape.join(', ')}]`);
  if (labels.ndim !== 1 || labels.size(0) !== images.size(0)) {
    throw new DataError(
      `${path}: ${images.size(0)} ${what} images but labels of shape [${labels.shape.join(', ')}]`,
    );
  }
  const pixels = E.tidy(() => {
    if (images.dtype === 'uint8') return images.toArray() as Uint8Array;
    const lo = images.min().item();
    const hi = images.max().item();
    if (lo < 0 || hi > 1)
      throw new DataError(
        `${path}: floating-point ${what} images must lie in [0, 1], found values in [${lo}, ${hi}]`,
      );
    return images.mul(255).round().to('uint8').toArray() as Uint8Array;
  });
  return { pixels, labels: Int32Array.from(labels.toNumbers()) };
}

export function readTensorFile(path: string, o: { seed?: number; testFraction?: number } = {}): RawDataset {
  const { tensors, metadata } = E.loadSafetensors(path);
  let train: RawSplit;
  let test: RawSplit;
  let shape: number[];
  if (
    tensors['train.images'] &&
    tensors['train.labels'] &&
    tensors['test.images'] &&
    tensors['test.labels']
  ) {
    train = toRaw(path, tensors['train.images'], tensors['train.labels'], 'train');
    test = toRaw(path, tensors['test.images'], tensors['test.labels'], 'test');
    shape = tensors['train.images'].shape.slice(1);
  } else if (tensors.images && tensors.labels) {
    const all = toRaw(path, tensors.images, tensors.labels, 'the');
    shape = tensors.images.shape.slice(1);
    const n = all.labels.length;
    const perm = E.tidy(() => E.randperm(n, { generator: new E.Generator(o.seed ?? 0) }).toNumbers());
    const nTest = Math.max(1, Math.round(n * (o.testFraction ?? 0.2)));
    const size = shape.reduce((a, b) => a * b, 1);
    const take = (idx: number[]): RawSplit => {
      const pixels = new Uint8Array(idx.length * size);
      idx.forEach((i, k) => pixels.set(all.pixels.subarray(i * size, (i + 1) * size), k * size));
      return { pixels, labels: Int32Array.from(idx, (i) => all.labels[i]) };
    };
    test = take(perm.slice(0, nTest));
    train = take(perm.slice(nTest));
  } else {
    throw new DataError(
      `${path} must hold tensors train.images, train.labels, test.images, test.labels (or images and labels); found: ${Object.keys(tensors).join(', ') || 'none'}`,
    );
  }
  for (const t of Object.values(tensors)) t.dispose();
  const numClasses = Math.max(...train.labels, ...test.labels) + 1;
  let classes = Array.from({ length: numClasses }, (_, i) => String(i));
  if (metadata.classes) {
    try {
      classes = JSON.parse(metadata.classes) as string[];
    } catch {
      throw new DataError(`${path}: metadata 'classes' must be a JSON list of class names`);
    }
  }
  const bad = [...train.labels, ...test.labels].find((y) => y < 0 || y >= classes.length);
  if (bad !== undefined)
    throw new DataError(`${path}: label ${bad} is not a class index 0..${classes.length - 1}`);
  return {
    name: `file:${path}`,
    classes,
    shape: shape as [number, number, number],
    train,
    test,
    files: [path],
    stats: null,
  };
}
