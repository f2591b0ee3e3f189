// A PNG grid of images: one row per class, de-normalised to pixels.
import { PNG } from 'pngjs';
import * as E from '../engine/index.js';

/** At most this many images of each class go into a grid (factorised sets decode to hundreds). */
export const GRID_COLUMNS = 20;

/** The first GRID_COLUMNS images of each class of class-ordered images, `perClass` each. */
export function gridImages(images: E.Tensor, classes: number, perClass: number): E.Tensor {
  if (perClass <= GRID_COLUMNS) return images;
  return E.cat(
    Array.from({ length: classes }, (_, c) => images.narrow(0, c * perClass, GRID_COLUMNS)),
    0,
  );
}

/**
 * Encodes raw images [N, C, H, W] in [0, 1] (clamped), laid out as `rows` rows of
 * `cols` tiles with a 2-pixel gap, as a PNG.
 */
export function gridPng(raw: E.Tensor, rows: number, cols: number): Buffer {
  const [n, c, h0, w0] = raw.shape;
  // Small images (MNIST's 28 px) are upscaled by whole pixels to at least 56 px, so the grid is legible.
  const zoom = Math.max(1, Math.ceil(56 / Math.max(h0, w0)));
  const [h, w] = [h0 * zoom, w0 * zoom];
  const gap = 2;
  const width = cols * (w + gap) + gap;
  const height = rows * (h + gap) + gap;
  const png = new PNG({ width, height });
  png.data.fill(255);
  const pixels = E.tidy(() => raw.clamp(0, 1).mul(255).round().to('uint8').toArray()) as Uint8Array;
  for (let i = 0; i < Math.min(n, rows * cols); i++) {
    const top = gap + Math.floor(i / cols) * (h + gap);
    const left = gap + (i % cols) * (w + gap);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const o = ((top + y) * width + left + x) * 4;
        const [sy, sx] = [Math.floor(y / zoom), Math.floor(x / zoom)];
        for (let k = 0; k < 3; k++)
          png.data[o + k] = pixels[((i * c + (c === 1 ? 0 : k)) * h0 + sy) * w0 + sx];
        png.data[o + 3] = 255;
      }
    }
  }
  return PNG.sync.write(png);
}
