// ZCA whitening as MTT computes it: kornia's ZCAWhitening(eps=0.1) fitted on raw [0, 1] pixels,
// without mean/std normalisation, against a NumPy transcription of kornia's zca_mean on 200
// CIFAR-shaped images (generate.py's hash_images, rebuilt here byte for byte).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as E from '../../src/engine/index.js';
import { Preprocessing } from '../../src/data/preprocess.js';
import { assertAllClose, referenceFixture } from '../helpers.js';

/** generate.py's hash_images: an integer hash half, a ramp half, rounded to bytes. */
function hashImages(n: number, c: number, h: number, w: number): Uint8Array {
  const out = new Uint8Array(n * c * h * w);
  for (let i = 0; i < out.length; i++) {
    let v = (Math.imul(i, 2654435761 | 0) + 12345) >>> 0;
    v = Math.imul((v ^ (v >>> 13)) >>> 0, 1274126177) >>> 0;
    const noise = v >>> 24;
    const x = i % w;
    const y = Math.floor(i / w) % h;
    const ch = Math.floor(i / (w * h)) % c;
    const img = Math.floor(i / (w * h * c));
    const ramp = ((y + x * (ch + 1)) * 4 + img * 3) % 256;
    // NumPy's round half to even.
    const t = 0.5 * noise + 0.5 * ramp;
    const r = Math.round(t);
    out[i] = t - Math.floor(t) === 0.5 && r % 2 === 1 ? r - 1 : r;
  }
  return out;
}

test("ZCA is fitted on raw pixels (no normalisation) and equals kornia's zca_mean with eps 0.1", () => {
  const fx = referenceFixture('zca');
  const raw = E.tensor(hashImages(200, 3, 32, 32), { shape: [200, 3, 32, 32] })
    .float()
    .div(255);
  const pre = Preprocessing.zcaWhitening(raw, 0.1);
  assert.deepEqual(pre.mean, [0, 0, 0], 'no mean subtraction before the whitening');
  assert.deepEqual(pre.std, [1, 1, 1], 'no std division before the whitening');
  assertAllClose(pre.zca!.mean, fx.get('mean'), 1e-6, 'ZCA mean');
  assertAllClose(pre.zca!.transform.diagonal(), fx.get('transform.diag'), 1e-4, 'transform diagonal');
  const white = pre.apply(raw.narrow(0, 0, 8)).flatten(1);
  assertAllClose(white, fx.get('whitened.first8'), 1e-4, 'whitened images');
  // invert() undoes it.
  assertAllClose(pre.invert(pre.apply(raw.narrow(0, 0, 2))), raw.narrow(0, 0, 2), 1e-4, 'inverse');
});
