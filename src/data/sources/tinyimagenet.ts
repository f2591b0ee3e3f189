// Tiny ImageNet in its official layout: tiny-imagenet-200/wnids.txt, words.txt,
// train/<wnid>/images/*.JPEG and val/images/*.JPEG with val/val_annotations.txt.
// The labelled val split serves as the test split (test/ has no labels).
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { DataError } from '../errors.js';
import { readDataFile } from '../files.js';
import { decodeImage, writeChw } from './images.js';
import type { RawDataset, RawSplit } from './raw.js';

const SIZE = 64;

function pack(path: string, files: string[], labels: number[]): RawSplit {
  const plane = 3 * SIZE * SIZE;
  const pixels = new Uint8Array(files.length * plane);
  files.forEach((f, i) => {
    const img = decodeImage(f);
    if (img.width !== SIZE || img.height !== SIZE)
      throw new DataError(`${f} is ${img.width}x${img.height}, Tiny ImageNet images are 64x64 (${path})`);
    writeChw(img, 3, pixels, i * plane);
  });
  return { pixels, labels: Int32Array.from(labels) };
}

export function readTinyImageNet(dataDir?: string): RawDataset {
  if (!dataDir)
    throw new DataError(
      "dataset 'tinyimagenet' is read from a local copy: pass --data-dir DIR where DIR holds tiny-imagenet-200/ (wnids.txt, train/, val/)",
    );
  const root = [join(dataDir, 'tiny-imagenet-200'), dataDir].find((d) => existsSync(join(d, 'wnids.txt')));
  if (!root)
    throw new DataError(
      `dataset 'tinyimagenet' is not available: missing ${join(dataDir, 'tiny-imagenet-200', 'wnids.txt')}`,
    );
  const wnids = readDataFile(join(root, 'wnids.txt'))
    .toString('utf8')
    .split(/\r?\n/)
    .map((s) => s.trim())
    .filter(Boolean);
  const index = new Map(wnids.map((w, i) => [w, i]));
  const words = new Map<string, string>();
  if (existsSync(join(root, 'words.txt'))) {
    for (const line of readDataFile(join(root, 'words.txt')).toString('utf8').split(/\r?\n/)) {
      const [w, name] = line.split('\t');
      if (w && name) words.set(w, name.split(',')[0].trim());
    }
  }
  const trainFiles: string[] = [];
  const trainLabels: number[] = [];
  wnids.forEach((w, c) => {
    const dir = join(root, 'train', w, 'images');
    if (!existsSync(dir)) throw new DataError(`tinyimagenet: class folder ${dir} is missing`);
    const files = readdirSync(dir)
      .filter((f) => /\.jpe?g$/i.test(f))
      .sort();
    if (files.length === 0) throw new DataError(`tinyimagenet: class folder ${dir} has no images`);
    for (const f of files) {
      trainFiles.push(join(dir, f));
      trainLabels.push(c);
    }
  });
  const annotations = join(root, 'val', 'val_annotations.txt');
  if (!existsSync(annotations)) throw new DataError(`tinyimagenet: ${annotations} is missing`);
  const valFiles: string[] = [];
  const valLabels: number[] = [];
  for (const line of readDataFile(annotations).toString('utf8').split(/\r?\n/)) {
    const [file, wnid] = line.split('\t');
    if (!file) continue;
    const c = index.get(wnid);
    if (c === undefined)
      throw new DataError(`${annotations}: ${file} has class ${wnid}, which is not in wnids.txt`);
    valFiles.push(join(root, 'val', 'images', file));
    valLabels.push(c);
  }
  return {
    name: 'tinyimagenet',
    classes: wnids.map((w) => words.get(w) ?? w),
    shape: [3, SIZE, SIZE],
    train: pack(root, trainFiles, trainLabels),
    test: pack(root, valFiles, valLabels),
    files: [join(root, 'wnids.txt'), annotations],
    stats: { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] },
  };
}
