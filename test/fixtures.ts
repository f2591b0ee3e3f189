// Small datasets the tests write themselves (IDX files, image folders, tensor files).
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { PNG } from 'pngjs';
import * as E from '../src/engine/index.js';

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `distillery-${prefix}-`));
}

export function idxBytes(values: Uint8Array, shape: number[]): Buffer {
  const head = Buffer.alloc(4 + 4 * shape.length);
  head[2] = 0x08;
  head[3] = shape.length;
  shape.forEach((s, i) => head.writeUInt32BE(s, 4 + 4 * i));
  return Buffer.concat([head, Buffer.from(values)]);
}

/**
 * n = classes * perClass images [n, 1, size, size] (uint8) where class c is a bright
 * square at its own position, so a network can learn the task in a few steps.
 */
export function squares(
  classes: number,
  perClass: number,
  size = 28,
  offset = 0,
): { pixels: Uint8Array; labels: Uint8Array; n: number } {
  const n = classes * perClass;
  const pixels = new Uint8Array(n * size * size);
  const labels = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const c = i % classes;
    labels[i] = c;
    const x0 = 2 + ((c * 7) % (size - 8));
    const y0 = 2 + ((c * 3) % (size - 8));
    for (let y = y0; y < y0 + 6; y++)
      for (let x = x0; x < x0 + 6; x++) pixels[i * size * size + y * size + x] = 200 + ((i + offset) % 50);
  }
  return { pixels, labels, n };
}

/** An MNIST-like IDX dataset of the 10 digit classes (`perClass` train and test images each). */
export function writeIdxDataset(dir: string, o: { perClass?: number; gzip?: boolean } = {}): void {
  mkdirSync(dir, { recursive: true });
  const write = (name: string, data: Buffer) =>
    writeFileSync(join(dir, o.gzip ? `${name}.gz` : name), o.gzip ? gzipSync(data) : data);
  for (const [prefix, offset] of [
    ['train', 0],
    ['t10k', 1],
  ] as const) {
    const s = squares(10, o.perClass ?? 3, 28, offset);
    write(`${prefix}-images-idx3-ubyte`, idxBytes(s.pixels, [s.n, 28, 28]));
    write(`${prefix}-labels-idx1-ubyte`, idxBytes(s.labels, [s.n]));
  }
}

/** A custom dataset file with `classes` classes of squares; returns its path. */
export function writeSquaresFile(o: { classes?: number; perClass?: number; size?: number } = {}): string {
  const classes = o.classes ?? 3;
  const size = o.size ?? 16;
  const path = join(tempDir('squares'), 'squares.safetensors');
  const split = (offset: number) => {
    const s = squares(classes, o.perClass ?? 8, size, offset);
    return {
      images: E.tensor(s.pixels, { shape: [s.n, 1, size, size] }),
      labels: E.tensor(Int32Array.from(s.labels)).long(),
    };
  };
  const train = split(0);
  const test = split(1);
  E.saveSafetensors(path, {
    'train.images': train.images,
    'train.labels': train.labels,
    'test.images': test.images,
    'test.labels': test.labels,
  });
  return path;
}

export function writePng(
  path: string,
  width: number,
  height: number,
  rgb: (x: number, y: number) => [number, number, number],
): void {
  const png = new PNG({ width, height });
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const [r, g, b] = rgb(x, y);
      png.data.set([r, g, b, 255], (y * width + x) * 4);
    }
  }
  writeFileSync(path, PNG.sync.write(png));
}

/** An image folder of two classes, left and right halves lit (6 PNGs of 16x16 each). */
export function writeLeftRightFolder(prefix = 'lr-data'): string {
  const root = tempDir(prefix);
  for (const [c, x0] of [
    ['left', 0],
    ['right', 8],
  ] as const) {
    mkdirSync(join(root, c));
    for (let i = 0; i < 6; i++)
      writePng(join(root, c, `${i}.png`), 16, 16, (x) =>
        x >= x0 && x < x0 + 8 ? [200 + i, 200, 200] : [0, 0, 0],
      );
  }
  return root;
}

/** Expert training small enough for a test: 2 ConvNetW8 experts of 3 epochs on a squares dataset. */
export const TINY_EXPERTS = {
  model: 'ConvNetW8',
  experts: 2,
  epochs: 3,
  lr: 0.01,
  batchSize: 16,
  augment: true,
  seed: 0,
} as const;

/**
 * The input of a short trajectory-matching run on a test dataset (4 iterations of 3 student steps,
 * checkpoints every 2, no evaluation); `top` and `methodConfig` override its settings.
 */
export function trajectoryRunInput(
  data: string,
  method: string,
  experts: string,
  o: { top?: Record<string, unknown>; methodConfig?: Record<string, unknown> } = {},
): Record<string, unknown> {
  return {
    dataset: data,
    method,
    ipc: 2,
    model: 'ConvNetW8',
    iterations: 4,
    checkpointEvery: 2,
    evalRuns: 0,
    optimizer: { lr: 100 },
    optimizers: { lr: { lr: 1e-6 } },
    ...o.top,
    methodConfig: { experts, synSteps: 3, expertEpochs: 1, maxStartEpoch: 2, ...o.methodConfig },
  };
}
