// A labelled image dataset in memory: train/test images [N, C, H, W] float32 in
// model-input space (after `preprocessing`), int64 labels, class names, per-class
// indices and seeded per-class sampling.
import * as E from '../engine/index.js';
import { DataError } from './errors.js';
import type { Preprocessing } from './preprocess.js';
import { cacheName } from '../util/cache.js';

export interface Split {
  images: E.Tensor;
  labels: E.Tensor;
}

export interface DatasetInfo {
  name: string;
  classes: string[];
  /** Where the data came from (paths or package), for run records. */
  source: string;
  /** sha256 over the raw files, for run records. */
  checksum: string;
}

export class Dataset {
  readonly #classIndices: number[][];

  constructor(
    readonly info: DatasetInfo,
    readonly train: Split,
    readonly test: Split,
    readonly preprocessing: Preprocessing,
  ) {
    for (const [name, split] of [
      ['train', train],
      ['test', test],
    ] as const) {
      if (split.images.ndim !== 4)
        throw new DataError(
          `${info.name} ${name} images must be [N, C, H, W], got [${split.images.shape.join(', ')}]`,
        );
      if (split.labels.ndim !== 1 || split.labels.size(0) !== split.images.size(0)) {
        throw new DataError(
          `${info.name} ${name}: ${split.images.size(0)} images but ${split.labels.numel} labels`,
        );
      }
    }
    const labels = train.labels.toNumbers();
    const k = info.classes.length;
    this.#classIndices = Array.from({ length: k }, () => []);
    labels.forEach((y, i) => {
      if (!(y >= 0 && y < k))
        throw new DataError(`${info.name}: label ${y} of train image ${i} is outside 0..${k - 1}`);
      this.#classIndices[y].push(i);
    });
    const empty = this.#classIndices.findIndex((c) => c.length === 0);
    if (empty >= 0)
      throw new DataError(`${info.name}: class '${info.classes[empty]}' has no training images`);
  }

  get name(): string {
    return this.info.name;
  }
  get classes(): string[] {
    return this.info.classes;
  }
  get numClasses(): number {
    return this.info.classes.length;
  }
  /** [C, H, W] of one image. */
  get imageShape(): [number, number, number] {
    const [, c, h, w] = this.train.images.shape;
    return [c, h, w];
  }
  /** Training-set indices of each class. */
  classIndices(c: number): readonly number[] {
    return this.#classIndices[c];
  }
  get smallestClassSize(): number {
    // A reduce, not Math.min(...sizes): a spread of 100k+ classes would overflow the stack.
    return this.#classIndices.reduce((min, c) => Math.min(min, c.length), Infinity);
  }

  /**
   * n distinct random training indices of each class (in class order), drawn from
   * `gen` as in the reference code (a permutation of the class, first n).
   */
  sampleIndices(
    n: number,
    gen: E.Generator,
    classes: readonly number[] = this.#classIndices.map((_, c) => c),
  ): number[] {
    const out: number[] = [];
    for (const c of classes) {
      const idx = this.#classIndices[c];
      if (n > idx.length) {
        throw new DataError(
          `${this.name}: asked for ${n} images of class '${this.classes[c]}', which has only ${idx.length}`,
        );
      }
      const perm = E.tidy(() => E.randperm(idx.length, { generator: gen }).slice(0, 0, n).toNumbers());
      for (const p of perm) out.push(idx[p]);
    }
    return out;
  }

  /** Training images at the given indices (one gather). */
  gather(indices: readonly number[], split: Split = this.train): Split {
    return E.tidy(() => {
      const index = E.tensor(Int32Array.from(indices)).long();
      return { images: split.images.indexSelect(0, index), labels: split.labels.indexSelect(0, index) };
    });
  }

  /** Releases the image tensors. */
  dispose(): void {
    for (const t of [this.train.images, this.train.labels, this.test.images, this.test.labels]) t.dispose();
  }
}

/**
 * The dataset restricted to `classes` (relabelled 0..k-1 in the given order), train and test alike:
 * what a continual learner sees at one stage. The images are copies (the original stays usable).
 *
 * @example const stage = classSubset(mnist, [3, 7]); // stage.classes: ['3', '7'], labels 0 and 1
 */
export function classSubset(dataset: Dataset, classes: readonly number[]): Dataset {
  if (classes.length === 0) throw new DataError('classSubset needs at least one class');
  for (const c of classes)
    if (!Number.isInteger(c) || c < 0 || c >= dataset.numClasses)
      throw new DataError(`class ${c} is not a class of ${dataset.name} (0..${dataset.numClasses - 1})`);
  if (new Set(classes).size !== classes.length)
    throw new DataError(`classSubset: repeated classes in [${classes.join(', ')}]`);
  const pick = (split: Split) =>
    E.tidy(() => {
      const labels = split.labels.toNumbers();
      const newLabel = new Map(classes.map((c, i) => [c, i]));
      const keep = labels.flatMap((y, i) => (newLabel.has(y) ? [i] : []));
      const index = E.tensor(Int32Array.from(keep)).long();
      return {
        images: split.images.indexSelect(0, index),
        labels: E.tensor(Int32Array.from(keep.map((i) => newLabel.get(labels[i])!))).long(),
      };
    });
  // The name stays (what is keyed on it, e.g. the DSA strategy without flips for digits, still holds);
  // the checksum and source say which classes, so caches and run records tell the subsets apart.
  const info: DatasetInfo = {
    ...dataset.info,
    classes: classes.map((c) => dataset.classes[c]),
    source: `${dataset.info.source} (classes ${classes.join(', ')})`,
    checksum: `${dataset.info.checksum}:classes=${classes.join(',')}`,
  };
  return new Dataset(info, pick(dataset.train), pick(dataset.test), dataset.preprocessing);
}

/**
 * The dataset with its training split cut to the training images at `indices` (in that order; the
 * test split and the classes kept): a split of the real data that one side of an experiment may see,
 * e.g. an architecture search's training part without its validation images, or the members of a
 * membership-inference experiment. The checksum names the subset, so caches tell subsets apart.
 *
 * @example const members = trainSubset(mnist, memberIndices); // distil from the members only
 */
export function trainSubset(dataset: Dataset, indices: readonly number[]): Dataset {
  const n = dataset.train.images.size(0);
  for (const i of indices)
    if (!Number.isInteger(i) || i < 0 || i >= n)
      throw new DataError(`trainSubset: index ${i} is outside the ${n} training images of ${dataset.name}`);
  if (new Set(indices).size !== indices.length) throw new DataError('trainSubset: repeated training indices');
  const info: DatasetInfo = {
    ...dataset.info,
    source: `${dataset.info.source} (${indices.length} of ${n} training images)`,
    checksum: `${dataset.info.checksum}:train=${cacheName(indices).slice(0, 16)}`,
  };
  const copy = (split: Split) =>
    E.tidy(() => ({ images: split.images.clone(), labels: split.labels.clone() }));
  return new Dataset(info, dataset.gather(indices), copy(dataset.test), dataset.preprocessing);
}
