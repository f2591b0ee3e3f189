import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as E from '../../src/engine/index.js';
import { loadDataset, datasetAvailability } from '../../src/data/registry.js';
import { readIdx } from '../../src/data/idx.js';
import { readMatV5 } from '../../src/data/sources/matv5.js';
import { Preprocessing } from '../../src/data/preprocess.js';
import jpeg from 'jpeg-js';
import { deflateSync } from 'node:zlib';
import { idxBytes, tempDir, writeIdxDataset, writePng } from '../fixtures.js';
import { assertClose } from '../helpers.js';

test('IDX datasets (plain and gzipped) load with standard normalisation and per-class indices', () => {
  for (const gzip of [false, true]) {
    const dir = tempDir('idx');
    writeIdxDataset(dir, { gzip });
    const ds = loadDataset('mnist', { dataDir: dir });
    assert.deepEqual(ds.train.images.shape, [30, 1, 28, 28]);
    assert.equal(ds.train.labels.dtype, 'int64');
    assert.deepEqual(ds.classIndices(1), [1, 11, 21]);
    // Background pixels are 0 before normalisation: (0 - 0.1307) / 0.3081.
    assertClose(
      ds.train.images.select(0, 0).select(0, 0).select(0, 0).select(0, 0),
      [-0.1307 / 0.3081],
      1e-6,
    );
    assertClose(ds.preprocessing.invert(ds.train.images.narrow(0, 0, 1)).max(), [(200 + 0) / 255], 1e-5);
    assert.match(ds.info.checksum, /^[0-9a-f]{64}$/);
  }
});

test('corrupt IDX input names the file and the problem', () => {
  const dir = tempDir('bad-idx');
  writeIdxDataset(dir);
  const images = join(dir, 'train-images-idx3-ubyte');
  const good = readFileSync(images);
  writeFileSync(images, good.subarray(0, good.length - 100));
  assert.throws(
    () => loadDataset('mnist', { dataDir: dir }),
    (e: Error) =>
      /is truncated: the header announces 23520 bytes/.test(e.message) && e.message.includes(images),
  );
  const wrongMagic = Buffer.from(good);
  wrongMagic[0] = 7;
  writeFileSync(images, wrongMagic);
  assert.throws(() => loadDataset('mnist', { dataDir: dir }), /is not an IDX file: wrong magic number/);
  writeFileSync(images, good);
  writeFileSync(join(dir, 'train-labels-idx1-ubyte'), idxBytes(new Uint8Array(5), [5]));
  assert.throws(
    () => loadDataset('mnist', { dataDir: dir }),
    /holds 30 images but .*train-labels-idx1-ubyte holds 5 labels/,
  );
  const empty = tempDir('empty');
  assert.throws(
    () => loadDataset('mnist', { dataDir: empty }),
    /dataset 'mnist' is not available: missing .*train-images-idx3-ubyte\[\.gz\]/,
  );
  assert.throws(() => readIdx(join(dir, 'nope'), 1), /cannot read/);
});

test('the bundled MNIST is available and loads (60,000 / 10,000 images)', () => {
  const mnist = datasetAvailability().find((d) => d.name === 'mnist');
  assert.equal(mnist?.available, true, mnist?.detail);
  const ds = loadDataset('mnist');
  assert.deepEqual(ds.train.images.shape, [60000, 1, 28, 28]);
  assert.deepEqual(ds.test.images.shape, [10000, 1, 28, 28]);
  assert.equal(ds.smallestClassSize, 5421);
  // The standard statistics hold on the real data.
  assertClose(
    E.tidy(() => ds.train.images.mean()),
    [0],
    2e-3,
  );
  assertClose(
    E.tidy(() => ds.train.images.std()),
    [1],
    2e-3,
  );
  ds.dispose();
});

test('unknown datasets and missing local copies say what to do', () => {
  assert.throws(
    () => loadDataset('imagenet-1k'),
    /unknown dataset 'imagenet-1k'. Built in: mnist, fashion-mnist, cifar10/,
  );
  assert.throws(() => loadDataset('cifar10'), /pass --data-dir DIR where DIR holds cifar-10-batches-bin\//);
  assert.throws(() => loadDataset('cifar10', { dataDir: tempDir('c10') }), /missing .*data_batch_1\.bin/);
  assert.throws(() => loadDataset('svhn'), /train_32x32\.mat and test_32x32\.mat/);
});

test('CIFAR-10 and CIFAR-100 binary records', () => {
  const dir = tempDir('cifar');
  const c10 = join(dir, 'cifar-10-batches-bin');
  mkdirSync(c10);
  const record = (labels: number[], pixel: number) =>
    Buffer.concat([Buffer.from(labels), Buffer.alloc(3072, pixel)]);
  const everyClass = Buffer.concat(Array.from({ length: 10 }, (_, c) => record([c], 10 * c)));
  for (let i = 1; i <= 5; i++) writeFileSync(join(c10, `data_batch_${i}.bin`), everyClass);
  writeFileSync(join(c10, 'test_batch.bin'), Buffer.concat([record([1], 30), record([0], 40)]));
  const ds = loadDataset('cifar10', { dataDir: dir });
  assert.deepEqual(ds.train.images.shape, [50, 3, 32, 32]);
  assert.equal(ds.classes[9], 'truck');
  assert.deepEqual(ds.test.labels.toNumbers(), [1, 0]);
  writeFileSync(join(c10, 'test_batch.bin'), Buffer.alloc(3000));
  assert.throws(
    () => loadDataset('cifar10', { dataDir: dir }),
    /test_batch\.bin is corrupt: 3000 bytes is not a whole number of 3073-byte records/,
  );
  const c100 = join(dir, 'cifar-100-binary');
  mkdirSync(c100);
  writeFileSync(join(c100, 'train.bin'), Buffer.concat([record([3, 42], 1), record([3, 7], 2)]));
  writeFileSync(join(c100, 'test.bin'), record([0, 42], 3));
  assert.throws(() => loadDataset('cifar100', { dataDir: dir }), /class '.*' has no training images/);
});

function matElement(type: number, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32LE(type, 0);
  head.writeUInt32LE(data.length, 4);
  return Buffer.concat([head, data, Buffer.alloc((8 - (data.length % 8)) % 8)]);
}

function matMatrix(name: string, dims: number[], type: number, data: Buffer): Buffer {
  const d = Buffer.alloc(4 * dims.length);
  dims.forEach((v, i) => d.writeInt32LE(v, 4 * i));
  return matElement(
    14,
    Buffer.concat([
      matElement(6, Buffer.alloc(8)),
      matElement(5, d),
      matElement(1, Buffer.from(name)),
      matElement(type, data),
    ]),
  );
}

function matFile(...elements: Buffer[]): Buffer {
  const header = Buffer.alloc(128, 32);
  header.write('IM', 126, 'latin1');
  return Buffer.concat([header, ...elements]);
}

test('MATLAB v5 reader (SVHN format): uncompressed and compressed variables', () => {
  const y = Buffer.alloc(16);
  y.writeDoubleLE(10, 0);
  y.writeDoubleLE(3, 8);
  const file = matFile(
    matMatrix('X', [2, 2, 1, 1], 2, Buffer.from([1, 2, 3, 4])),
    matElement(15, deflateSync(matMatrix('y', [2, 1], 9, y))),
  );
  const vars = readMatV5(file, 'test.mat');
  assert.deepEqual(Array.from(vars.get('X')!.data), [1, 2, 3, 4]);
  assert.deepEqual(vars.get('X')!.dims, [2, 2, 1, 1]);
  assert.deepEqual(Array.from(vars.get('y')!.data), [10, 3]);
  assert.throws(() => readMatV5(Buffer.alloc(200), 'x.mat'), /x\.mat is not a MATLAB v5 \.mat file/);
  assert.throws(() => readMatV5(file.subarray(0, 150), 'cut.mat'), /cut\.mat is truncated/);
});

test('SVHN: column-major X becomes NCHW, label 10 becomes digit 0', () => {
  const dir = tempDir('svhn');
  const write = (name: string, labels: number[]) => {
    const n = labels.length;
    // X(r, c, ch, i) = (r + 2c + 5ch + i) % 256, stored column-major.
    const x = Buffer.alloc(32 * 32 * 3 * n);
    for (let i = 0; i < n; i++)
      for (let ch = 0; ch < 3; ch++)
        for (let c = 0; c < 32; c++)
          for (let r = 0; r < 32; r++) x[r + 32 * c + 1024 * ch + 3072 * i] = (r + 2 * c + 5 * ch + i) % 256;
    const y = Buffer.alloc(8 * n);
    labels.forEach((v, i) => y.writeDoubleLE(v, 8 * i));
    writeFileSync(
      join(dir, name),
      matFile(
        matElement(15, deflateSync(matMatrix('X', [32, 32, 3, n], 2, x))),
        matMatrix('y', [n, 1], 9, y),
      ),
    );
  };
  write('train_32x32.mat', [10, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  write('test_32x32.mat', [10, 5]);
  const ds = loadDataset('svhn', { dataDir: dir, preprocessing: new Preprocessing([0, 0, 0], [1, 1, 1]) });
  assert.deepEqual(ds.train.labels.toNumbers().slice(0, 3), [0, 1, 2]);
  // image 1, channel 2, row 3, column 4: (3 + 8 + 10 + 1) / 255
  assertClose(ds.train.images.select(0, 1).select(0, 2).select(0, 3).select(0, 4), [22 / 255], 1e-6);
  write('test_32x32.mat', [10, 1.5]);
  assert.throws(
    () => loadDataset('svhn', { dataDir: dir }),
    /test_32x32\.mat: label 1\.5 of image 1 is not an integer in 1\.\.10/,
  );
});

test('Tiny ImageNet folder layout (train/<wnid>/images, val annotations)', () => {
  const root = join(tempDir('tin'), 'tiny-imagenet-200');
  const wnids = ['n01', 'n02'];
  const jpg = (path: string, v: number) => {
    const data = Buffer.alloc(64 * 64 * 4, v);
    writeFileSync(path, jpeg.encode({ data, width: 64, height: 64 }, 95).data);
  };
  mkdirSync(join(root, 'val', 'images'), { recursive: true });
  writeFileSync(join(root, 'wnids.txt'), wnids.join('\n'));
  writeFileSync(join(root, 'words.txt'), 'n01\tgoldfish, Carassius auratus\nn02\tgreat white shark\n');
  wnids.forEach((w, c) => {
    mkdirSync(join(root, 'train', w, 'images'), { recursive: true });
    for (let i = 0; i < 2; i++) jpg(join(root, 'train', w, 'images', `${w}_${i}.JPEG`), 60 + 100 * c);
  });
  jpg(join(root, 'val', 'images', 'val_0.JPEG'), 160);
  writeFileSync(join(root, 'val', 'val_annotations.txt'), 'val_0.JPEG\tn02\t0\t0\t63\t63\n');
  const ds = loadDataset('tinyimagenet', { dataDir: join(root, '..') });
  assert.deepEqual(ds.classes, ['goldfish', 'great white shark']);
  assert.deepEqual(ds.imageShape, [3, 64, 64]);
  assert.deepEqual(ds.test.labels.toNumbers(), [1]);
  writeFileSync(join(root, 'val', 'val_annotations.txt'), 'val_0.JPEG\tn99\t0\t0\t63\t63\n');
  assert.throws(
    () => loadDataset('tinyimagenet', { dataDir: join(root, '..') }),
    /has class n99, which is not in wnids\.txt/,
  );
});

test('image folders: seeded split, train/test layout, grayscale detection, and bad folders', () => {
  const root = tempDir('folder');
  for (const [c, color] of [
    ['cat', [200, 10, 10]],
    ['dog', [10, 200, 10]],
  ] as const) {
    mkdirSync(join(root, c));
    for (let i = 0; i < 5; i++)
      writePng(join(root, c, `${i}.png`), 8, 6, () => [color[0], color[1] + i, color[2]]);
  }
  const ds = loadDataset(root, { seed: 3 });
  assert.deepEqual(ds.classes, ['cat', 'dog']);
  assert.deepEqual(ds.imageShape, [3, 6, 8]);
  assert.equal(ds.train.images.size(0) + ds.test.images.size(0), 10);
  assert.equal(ds.test.images.size(0), 2);
  const again = loadDataset(root, { seed: 3 });
  assert.deepEqual(again.test.labels.toNumbers(), ds.test.labels.toNumbers());

  const gray = tempDir('gray');
  for (const split of ['train', 'test']) {
    for (const c of ['a', 'b']) {
      mkdirSync(join(gray, split, c), { recursive: true });
      writePng(join(gray, split, c, 'x.png'), 4, 4, (x) => [x * 10, x * 10, x * 10]);
    }
  }
  assert.deepEqual(loadDataset(gray).imageShape, [1, 4, 4]);

  writeFileSync(join(root, 'cat', 'notes.txt'), 'hello');
  assert.throws(() => loadDataset(root), /cat\/notes\.txt is not an image/);
  writeFileSync(join(root, 'cat', 'notes.txt'), '');
  const broken = tempDir('broken');
  for (const c of ['a', 'b']) mkdirSync(join(broken, c));
  writePng(join(broken, 'a', '1.png'), 4, 4, () => [1, 2, 3]);
  assert.throws(() => loadDataset(broken), /class folder .*\/b is empty/);
  writeFileSync(join(broken, 'b', 'fake.png'), 'not a png at all');
  assert.throws(() => loadDataset(broken), /fake\.png is not a PNG or JPEG image/);
});

test('a safetensors file with images and labels', () => {
  const dir = tempDir('st');
  const path = join(dir, 'data.safetensors');
  const images = E.randint(0, 256, [20, 1, 5, 5], { generator: new E.Generator(0) }).to('uint8');
  const labels = E.tensor(
    Array.from({ length: 20 }, (_, i) => i % 2),
    { dtype: 'int64' },
  );
  E.saveSafetensors(path, { images, labels }, { classes: JSON.stringify(['even', 'odd']) });
  const ds = loadDataset(path);
  assert.deepEqual(ds.classes, ['even', 'odd']);
  assert.equal(ds.train.images.size(0) + ds.test.images.size(0), 20);
  E.saveSafetensors(path, { images: images.float().mul(2), labels });
  assert.throws(() => loadDataset(path), /floating-point the images must lie in \[0, 1\]/);
  E.saveSafetensors(path, { x: labels });
  assert.throws(() => loadDataset(path), /must hold tensors train\.images/);
});
