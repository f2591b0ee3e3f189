// SVHN cropped digits, format 2: train_32x32.mat / test_32x32.mat with
// X [32, 32, 3, N] uint8 (column-major) and y [N, 1] with labels 1..10 (10 is digit 0).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { DataError } from '../errors.js';
import { readDataFile } from '../files.js';
import { readMatV5 } from './matv5.js';
import type { RawDataset, RawSplit } from './raw.js';

function readSplit(path: string): RawSplit {
  const vars = readMatV5(readDataFile(path), path);
  const X = vars.get('X');
  const y = vars.get('y');
  if (!X || !y)
    throw new DataError(
      `${path} must hold variables X and y (found: ${[...vars.keys()].join(', ') || 'none'})`,
    );
  const [h, w, c, n] = X.dims;
  if (h !== 32 || w !== 32 || c !== 3 || X.dims.length !== 4)
    throw new DataError(`${path}: X has dimensions [${X.dims.join(', ')}], expected [32, 32, 3, N]`);
  if (y.data.length !== n)
    throw new DataError(`${path}: X holds ${n} images but y holds ${y.data.length} labels`);
  const pixels = new Uint8Array(n * 3 * 32 * 32);
  // Column-major X(r, col, ch, i) -> row-major [i][ch][r][col].
  for (let i = 0; i < n; i++) {
    for (let ch = 0; ch < 3; ch++) {
      const src = i * 3072 + ch * 1024;
      for (let col = 0; col < 32; col++) {
        for (let r = 0; r < 32; r++) pixels[src + r * 32 + col] = X.data[src + col * 32 + r];
      }
    }
  }
  const labels = Int32Array.from(y.data, (v, i) => {
    // Integers only: a label of 1.5 would otherwise be truncated to digit 1.
    if (!(Number.isInteger(v) && v >= 1 && v <= 10))
      throw new DataError(`${path}: label ${v} of image ${i} is not an integer in 1..10 (10 is digit 0)`);
    return v === 10 ? 0 : v;
  });
  return { pixels, labels };
}

export function readSvhn(dataDir?: string): RawDataset {
  const files = ['train_32x32.mat', 'test_32x32.mat'];
  if (!dataDir)
    throw new DataError(
      `dataset 'svhn' is read from a local copy: pass --data-dir DIR where DIR holds ${files.join(' and ')} (cropped digits, format 2)`,
    );
  const missing = files.map((f) => join(dataDir, f)).filter((p) => !existsSync(p));
  if (missing.length) throw new DataError(`dataset 'svhn' is not available: missing ${missing.join(', ')}`);
  return {
    name: 'svhn',
    classes: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
    shape: [3, 32, 32],
    train: readSplit(join(dataDir, files[0])),
    test: readSplit(join(dataDir, files[1])),
    files: files.map((f) => join(dataDir, f)),
    stats: { mean: [0.4377, 0.4438, 0.4728], std: [0.198, 0.201, 0.197] },
  };
}
