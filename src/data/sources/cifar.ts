// CIFAR-10 and CIFAR-100, binary versions: fixed-size records of label byte(s)
// followed by 3072 pixel bytes already in C x H x W order.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { DataError } from '../errors.js';
import { readDataFile } from '../files.js';
import type { RawDataset, RawSplit } from './raw.js';

const PIXELS = 3 * 32 * 32;
const CIFAR10_CLASSES = [
  'airplane',
  'automobile',
  'bird',
  'cat',
  'deer',
  'dog',
  'frog',
  'horse',
  'ship',
  'truck',
];

function locate(dataDir: string | undefined, name: string, folder: string, files: string[]): string {
  if (!dataDir) {
    throw new DataError(
      `dataset '${name}' is read from a local copy: pass --data-dir DIR where DIR holds ${folder}/ (${files.join(', ')}) from the official binary version`,
    );
  }
  for (const dir of [join(dataDir, folder), dataDir]) {
    if (files.every((f) => existsSync(join(dir, f)))) return dir;
  }
  const missing = files
    .filter((f) => !existsSync(join(dataDir, folder, f)))
    .map((f) => join(dataDir, folder, f));
  throw new DataError(`dataset '${name}' is not available: missing ${missing.join(', ')}`);
}

function readRecords(paths: string[], labelBytes: number, labelOffset: number, numClasses: number): RawSplit {
  const record = labelBytes + PIXELS;
  const buffers = paths.map((p) => {
    const b = readDataFile(p);
    if (b.length === 0 || b.length % record !== 0) {
      throw new DataError(
        `${p} is corrupt: ${b.length} bytes is not a whole number of ${record}-byte records`,
      );
    }
    return b;
  });
  const n = buffers.reduce((s, b) => s + b.length / record, 0);
  const pixels = new Uint8Array(n * PIXELS);
  const labels = new Int32Array(n);
  let i = 0;
  buffers.forEach((b, k) => {
    for (let off = 0; off < b.length; off += record, i++) {
      const y = b[off + labelOffset];
      if (y >= numClasses)
        throw new DataError(
          `${paths[k]}: record ${off / record} has label ${y}, expected 0..${numClasses - 1}`,
        );
      labels[i] = y;
      pixels.set(b.subarray(off + labelBytes, off + record), i * PIXELS);
    }
  });
  return { pixels, labels };
}

function classNames(path: string, expected: number, fallback: string[] | null): string[] {
  if (existsSync(path)) {
    const names = readDataFile(path)
      .toString('utf8')
      .split(/\r?\n/)
      .map((s) => s.trim())
      .filter(Boolean);
    if (names.length === expected) return names;
  }
  return fallback ?? Array.from({ length: expected }, (_, i) => `class${i}`);
}

export function readCifar10(dataDir?: string): RawDataset {
  const trainFiles = [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`);
  const dir = locate(dataDir, 'cifar10', 'cifar-10-batches-bin', [...trainFiles, 'test_batch.bin']);
  const paths = trainFiles.map((f) => join(dir, f));
  return {
    name: 'cifar10',
    classes: classNames(join(dir, 'batches.meta.txt'), 10, CIFAR10_CLASSES),
    shape: [3, 32, 32],
    train: readRecords(paths, 1, 0, 10),
    test: readRecords([join(dir, 'test_batch.bin')], 1, 0, 10),
    files: [...paths, join(dir, 'test_batch.bin')],
    stats: { mean: [0.4914, 0.4822, 0.4465], std: [0.2023, 0.1994, 0.201] },
  };
}

export function readCifar100(dataDir?: string): RawDataset {
  const dir = locate(dataDir, 'cifar100', 'cifar-100-binary', ['train.bin', 'test.bin']);
  return {
    name: 'cifar100',
    classes: classNames(join(dir, 'fine_label_names.txt'), 100, null),
    shape: [3, 32, 32],
    // Records are <coarse label> <fine label> <pixels>; the 100 fine labels are the classes.
    train: readRecords([join(dir, 'train.bin')], 2, 1, 100),
    test: readRecords([join(dir, 'test.bin')], 2, 1, 100),
    files: [join(dir, 'train.bin'), join(dir, 'test.bin')],
    stats: { mean: [0.5071, 0.4866, 0.4409], std: [0.2673, 0.2564, 0.2762] },
  };
}
