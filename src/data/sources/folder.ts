// Custom data as an image folder: ROOT/<class>/*.png|jpg, or ROOT/train/<class>/...
// and ROOT/test/<class>/... When there is no train/test split on disk, a seeded
// split holds out `testFraction` of each class.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { DataError } from '../errors.js';
import { decodeImage, isGray, isImageFile, writeChw, type DecodedImage } from './images.js';
import type { RawDataset, RawSplit } from './raw.js';

export interface FolderOptions {
  testFraction?: number;
  seed?: number;
}

function subdirs(dir: string): string[] {
  return readdirSync(dir)
    .filter((d) => !d.startsWith('.') && statSync(join(dir, d)).isDirectory())
    .sort();
}

function listClasses(root: string): { classes: string[]; files: string[][] } {
  const classes = subdirs(root);
  if (classes.length < 2)
    throw new DataError(`image folder ${root} must hold one subfolder per class (found ${classes.length})`);
  const files = classes.map((c) => {
    const dir = join(root, c);
    const entries = readdirSync(dir)
      .filter((f) => !f.startsWith('.'))
      .sort();
    const bad = entries.find((f) => !isImageFile(f));
    if (bad)
      throw new DataError(
        `${join(dir, bad)} is not an image (expected .png, .jpg or .jpeg files only in class folders)`,
      );
    if (entries.length === 0)
      throw new DataError(`class folder ${dir} is empty: every class needs at least one image`);
    return entries.map((f) => join(dir, f));
  });
  return { classes, files };
}

/** A small deterministic generator for the split (mulberry32), independent of libtorch. */
function shuffled<T>(items: T[], seed: number): T[] {
  let s = seed >>> 0;
  const rand = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = items.slice();
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

function pack(
  items: { path: string; label: number; img: DecodedImage }[],
  channels: 1 | 3,
  h: number,
  w: number,
): RawSplit {
  const size = channels * h * w;
  const pixels = new Uint8Array(items.length * size);
  const labels = new Int32Array(items.length);
  items.forEach((it, i) => {
    writeChw(it.img, channels, pixels, i * size);
    labels[i] = it.label;
  });
  return { pixels, labels };
}

export function readImageFolder(root: string, o: FolderOptions = {}): RawDataset {
  if (!existsSync(root) || !statSync(root).isDirectory())
    throw new DataError(`image folder ${root} does not exist`);
  const hasSplit = existsSync(join(root, 'train')) && existsSync(join(root, 'test'));
  let trainFiles: string[][];
  let testFiles: string[][];
  let classes: string[];
  if (hasSplit) {
    const train = listClasses(join(root, 'train'));
    const test = listClasses(join(root, 'test'));
    if (train.classes.join('\n') !== test.classes.join('\n')) {
      throw new DataError(
        `${root}: train/ and test/ must hold the same class folders (train: ${train.classes.join(', ')}; test: ${test.classes.join(', ')})`,
      );
    }
    ({ classes } = train);
    trainFiles = train.files;
    testFiles = test.files;
  } else {
    const all = listClasses(root);
    classes = all.classes;
    const fraction = o.testFraction ?? 0.2;
    trainFiles = [];
    testFiles = [];
    all.files.forEach((files, c) => {
      const order = shuffled(files, (o.seed ?? 0) * 1000003 + c);
      const nTest = Math.min(order.length - 1, Math.round(order.length * fraction));
      testFiles.push(order.slice(0, nTest));
      trainFiles.push(order.slice(nTest));
    });
  }
  const decode = (lists: string[][]) =>
    lists.flatMap((files, label) => files.map((path) => ({ path, label, img: decodeImage(path) })));
  const train = decode(trainFiles);
  const test = decode(testFiles);
  const first = train[0].img;
  for (const it of [...train, ...test]) {
    if (it.img.width !== first.width || it.img.height !== first.height) {
      throw new DataError(
        `${it.path} is ${it.img.width}x${it.img.height} but ${train[0].path} is ${first.width}x${first.height}: all images of a folder dataset must have one size`,
      );
    }
  }
  const channels = [...train, ...test].every((it) => isGray(it.img)) ? 1 : 3;
  return {
    name: `folder:${root}`,
    classes,
    shape: [channels, first.height, first.width],
    train: pack(train, channels, first.height, first.width),
    test: pack(test, channels, first.height, first.width),
    files: [...train, ...test].map((it) => it.path),
    stats: null,
  };
}
