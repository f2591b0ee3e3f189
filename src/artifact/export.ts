// Artifacts for NumPy/PyTorch users: .npy files (np.load) and one PNG per image.
import { join } from 'node:path';
import { PNG } from 'pngjs';
import * as E from '../engine/index.js';
import { makeDirectory, writeFileAtomic } from '../engine/files.js';
import type { Artifact } from './artifact.js';

const DESCR: Partial<Record<E.DType, string>> = { float32: '<f4', float64: '<f8', int64: '<i8' };

/**
 * A tensor as a NumPy .npy file (format 1.0, little-endian, C order).
 *
 * @example writeFileAtomic('labels.npy', npyBytes(labels)) // np.load('labels.npy')
 */
export function npyBytes(t: E.Tensor): Buffer {
  const descr = DESCR[t.dtype];
  if (!descr) throw new Error(`npy export supports float32, float64 and int64 tensors, not ${t.dtype}`);
  const shape = t.shape.length === 1 ? `(${t.shape[0]},)` : `(${t.shape.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  // Magic (6) + version (2) + length (2) + header, padded with spaces to a multiple of 64, ending in \n.
  const total = Math.ceil((10 + header.length + 1) / 64) * 64;
  header = header.padEnd(total - 10 - 1, ' ') + '\n';
  const head = Buffer.alloc(10);
  head.write('\x93NUMPY', 0, 'latin1');
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  const data = E.tidy(() => t.contiguous().toArray()) as Float32Array | Float64Array | BigInt64Array;
  return Buffer.concat([
    head,
    Buffer.from(header, 'latin1'),
    Buffer.from(data.buffer, data.byteOffset, data.byteLength),
  ]);
}

/** images.npy (model-input space: what networks train on), pixels.npy (de-normalised, [0, 1]), labels.npy. */
export function exportNpy(art: Artifact, dir: string): string[] {
  makeDirectory(dir);
  const files = E.tidy(() => {
    const out: [string, E.Tensor][] = [
      ['images.npy', art.images.float()],
      ['pixels.npy', art.preprocessing.invert(art.images).clamp(0, 1).float()],
      ['labels.npy', art.labels],
    ];
    if (art.labelTargets) out.push(['label_targets.npy', art.labelTargets.float()]);
    for (const [name, t] of out) writeFileAtomic(join(dir, name), npyBytes(t));
    return out.map(([name]) => join(dir, name));
  });
  return files;
}

/** One PNG per image, de-normalised: DIR/<class index>-<class name>/<i>.png. */
export function exportPng(art: Artifact, dir: string): string[] {
  const classes = art.meta.dataset.classes;
  const per = art.meta.decodedPerClass;
  const [n, c, h, w] = art.images.shape;
  const pixels = E.tidy(
    () =>
      art.preprocessing.invert(art.images).clamp(0, 1).mul(255).round().to('uint8').toArray() as Uint8Array,
  );
  const files: string[] = [];
  for (let i = 0; i < n; i++) {
    const k = Math.floor(i / per);
    const classDir = join(dir, `${k}-${classes[k].replace(/[^\w.-]+/g, '_')}`);
    if (i % per === 0) makeDirectory(classDir);
    const png = new PNG({ width: w, height: h });
    for (let p = 0; p < h * w; p++) {
      for (let ch = 0; ch < 3; ch++) png.data[p * 4 + ch] = pixels[(i * c + (c === 1 ? 0 : ch)) * h * w + p];
      png.data[p * 4 + 3] = 255;
    }
    const file = join(classDir, `${i % per}.png`);
    writeFileAtomic(file, PNG.sync.write(png));
    files.push(file);
  }
  return files;
}
