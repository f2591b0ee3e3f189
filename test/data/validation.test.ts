// Defects of issue 16: data that used to load wrongly, hang or crash is refused
// with a message naming the file, the problem and the fix.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import jpeg from 'jpeg-js';
import * as E from '../../src/engine/index.js';
import { loadDataset } from '../../src/data/registry.js';
import { decodeImage } from '../../src/data/sources/images.js';
import { idxBytes, tempDir, writeIdxDataset, writePng } from '../fixtures.js';

/** A tensor file `images`/`labels` (or any tensors) with optional metadata; returns its path. */
function tensorFile(tensors: Record<string, E.Tensor>, metadata: Record<string, string> = {}): string {
  const path = join(tempDir('issue16'), 'data.safetensors');
  E.saveSafetensors(path, tensors, metadata);
  return path;
}

const uint8Images = (n: number) => E.zeros([n, 1, 2, 2]).to('uint8');
const longLabels = (values: number[]) => E.tensor(values, { dtype: 'int64' });

test('float images with NaN or Infinity are refused with the count and the first bad element', () => {
  const values = Array.from({ length: 6 * 4 }, (_, i) => (i % 7) / 7);
  values[5] = NaN;
  values[9] = NaN;
  values[17] = Infinity;
  const images = E.tensor(values, { shape: [6, 1, 2, 2] });
  const path = tensorFile({ images, labels: longLabels([0, 1, 0, 1, 0, 1]) });
  assert.throws(
    () => loadDataset(path),
    (e: Error) =>
      e.message.includes(path) &&
      /3 non-finite values \(NaN or ±Infinity\); the first is element 5 \(image 1\)/.test(e.message),
  );
});

test('labels must be integer class indices and classes a JSON list of strings', () => {
  const images = uint8Images(6);
  const floatLabels = E.tensor([0, 1, 0, 1.5, 0, 1]);
  assert.throws(
    () => loadDataset(tensorFile({ images, labels: floatLabels })),
    /labels\[3\] is 1\.5: labels must be integer class indices 0\.\.k-1/,
  );
  // Integer values stored as floats are fine.
  const ds = loadDataset(tensorFile({ images, labels: E.tensor([0, 1, 0, 1, 0, 1]) }));
  assert.deepEqual(ds.classes, ['0', '1']);
  const labels = longLabels([0, 1, 0, 1, 0, 1]);
  for (const classes of ['"abc"', '{"0": "a", "1": "b"}', '[0, 1]', '[]', 'not json']) {
    assert.throws(
      () => loadDataset(tensorFile({ images, labels }, { classes })),
      /metadata 'classes' must be a JSON list of class names, e.g\. \["cat", "dog"\]/,
      classes,
    );
  }
  assert.throws(
    () =>
      loadDataset(tensorFile({ images, labels: longLabels([0, 1, 2, 0, 1, 2]) }, { classes: '["a","b"]' })),
    /labels\[2\] is 2, outside the 2 classes 0\.\.1 of metadata 'classes'/,
  );
  assert.throws(
    () => loadDataset(tensorFile({ images, labels: longLabels([0, 1, -1, 0, 1, 0]) })),
    /labels\[2\] is -1: labels must be integer class indices 0\.\.k-1/,
  );
  // A huge label would otherwise make a billion class names.
  assert.throws(
    () => loadDataset(tensorFile({ images, labels: longLabels([0, 1, 1e9, 0, 1, 0]) })),
    /label 1000000000 asks for 1000000001 classes but there are only \d training images/,
  );
});

test('non-regular files (FIFOs, devices) are refused instead of read forever', () => {
  const dir = tempDir('fifo');
  const fifo = join(dir, 'data.safetensors');
  execFileSync('mkfifo', [fifo]);
  const notRegular = /is not a regular file \(a FIFO\): give the path of a dataset file/;
  assert.throws(() => loadDataset(fifo), notRegular);
  assert.throws(() => loadDataset(`file:${fifo}`), notRegular);
  const folder = tempDir('fifo-folder');
  for (const c of ['a', 'b']) {
    mkdirSync(join(folder, c));
    for (let i = 0; i < 3; i++) writePng(join(folder, c, `${i}.png`), 2, 2, () => [i, i, i]);
  }
  execFileSync('mkfifo', [join(folder, 'b', 'pipe.png')]);
  assert.throws(() => loadDataset(folder), /pipe\.png is not a regular file \(a FIFO\)/);
  const idx = tempDir('fifo-idx');
  writeIdxDataset(idx);
  execFileSync('rm', [join(idx, 't10k-labels-idx1-ubyte')]);
  execFileSync('mkfifo', [join(idx, 't10k-labels-idx1-ubyte')]);
  assert.throws(() => loadDataset('mnist', { dataDir: idx }), /t10k-labels-idx1-ubyte is not a regular file/);
  assert.throws(() => loadDataset('file:/dev/zero'), /\/dev\/zero is not a regular file \(a device\)/);
});

test('an IDX file longer than its header announces is refused', () => {
  const dir = tempDir('idx-long');
  writeIdxDataset(dir);
  writeFileSync(join(dir, 't10k-labels-idx1-ubyte'), idxBytes(new Uint8Array(40), [30]));
  assert.throws(
    () => loadDataset('mnist', { dataDir: dir }),
    /t10k-labels-idx1-ubyte holds 10 bytes more than its header announces \(\[30\], 30 bytes of data\)/,
  );
});

/** The first 33 bytes of a PNG: signature and IHDR chunk (8-bit RGB), no image data. */
function pngHeader(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(25);
  ihdr.writeUInt32BE(13, 0);
  ihdr.write('IHDR', 4, 'latin1');
  ihdr.writeUInt32BE(width, 8);
  ihdr.writeUInt32BE(height, 12);
  ihdr[16] = 8; // bit depth
  ihdr[17] = 2; // colour type RGB
  // The CRC (bytes 21..24) stays zero: the size check must come before any decoding.
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), ihdr]);
}

test('images larger than 4096x4096 are refused from their header, before decoding', () => {
  const dir = tempDir('big');
  const tooLarge = /is 12000x12000 pixels, more than the 4096x4096 Distillery decodes/;
  writeFileSync(join(dir, 'huge.png'), pngHeader(12000, 12000));
  assert.throws(() => decodeImage(join(dir, 'huge.png')), tooLarge);
  // Valid images just over the limit, which decode quickly.
  writePng(join(dir, 'wide.png'), 4097, 1, () => [1, 2, 3]);
  assert.throws(() => decodeImage(join(dir, 'wide.png')), /is 4097x1 pixels, more than the 4096x4096/);
  const data = Buffer.alloc(4 * 4097, 128);
  writeFileSync(join(dir, 'tall.jpg'), jpeg.encode({ data, width: 1, height: 4097 }, 90).data);
  assert.throws(
    () => decodeImage(join(dir, 'tall.jpg')),
    /tall\.jpg is 1x4097 pixels, more than the 4096x4096/,
  );
  writePng(join(dir, 'ok.png'), 4096, 1, () => [1, 2, 3]);
  assert.equal(decodeImage(join(dir, 'ok.png')).width, 4096);
  const folder = tempDir('big-folder');
  for (const c of ['a', 'b']) {
    mkdirSync(join(folder, c));
    writeFileSync(join(folder, c, 'x.png'), pngHeader(12000, 12000));
  }
  assert.throws(() => loadDataset(folder), tooLarge);
});

test('a tensor file of 300,000 samples loads (no argument spread over the labels)', () => {
  const n = 300_000;
  const images = E.randint(0, 256, [n, 1, 2, 2], { generator: new E.Generator(0) }).to('uint8');
  const labels = E.tensor(Int32Array.from({ length: n }, (_, i) => i % 3)).long();
  const ds = loadDataset(tensorFile({ images, labels }));
  assert.equal(ds.numClasses, 3);
  assert.equal(ds.train.images.size(0) + ds.test.images.size(0), n);
  assert.ok(ds.smallestClassSize > 70_000);
  ds.dispose();
});

test('an empty train or test split is a clear error at load time', () => {
  // 2 images per class: the 20% held out rounds to none.
  const folder = tempDir('tiny-folder');
  for (const c of ['a', 'b']) {
    mkdirSync(join(folder, c));
    for (let i = 0; i < 2; i++) writePng(join(folder, c, `${i}.png`), 2, 2, () => [i, i, i]);
  }
  assert.throws(
    () => loadDataset(folder),
    (e: Error) =>
      e.message.startsWith(`the test split of folder:${folder} is empty`) &&
      /train\/<class>\/ and test\/<class>\//.test(e.message),
  );
  const emptyTest = tensorFile({
    'train.images': uint8Images(4),
    'train.labels': longLabels([0, 1, 0, 1]),
    'test.images': uint8Images(0),
    'test.labels': longLabels([]),
  });
  assert.throws(
    () => loadDataset(emptyTest),
    new RegExp(`^DataError: the test split of file:${emptyTest} is empty: .*test\\.images`),
  );
  const emptyTrain = tensorFile({
    'train.images': uint8Images(0),
    'train.labels': longLabels([]),
    'test.images': uint8Images(4),
    'test.labels': longLabels([0, 1, 0, 1]),
  });
  assert.throws(
    () => loadDataset(emptyTrain),
    new RegExp(`^DataError: the train split of file:${emptyTrain} is empty: .*train\\.images`),
  );
  // One sample: the held-out test image leaves no training image.
  const one = tensorFile({ images: uint8Images(1), labels: longLabels([0]) });
  assert.throws(() => loadDataset(one), /the train split of .* is empty/);
});

test('test images shaped differently from the train images are refused, naming both shapes', () => {
  const path = tensorFile({
    'train.images': uint8Images(4),
    'train.labels': longLabels([0, 1, 0, 1]),
    'test.images': E.zeros([2, 1, 3, 3]).to('uint8'),
    'test.labels': longLabels([0, 1]),
  });
  assert.throws(
    () => loadDataset(path),
    /test images are \[1, 3, 3\] each but train images \[1, 2, 2\]; store both splits at one size/,
  );
});
