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

// 3x5 digit glyphs, rows top to bottom, for the class index at the left of each row.
const DIGITS = [
  '111101101101111',
  '010110010010111',
  '111001111100111',
  '111001111001111',
  '101101111001001',
  '111100111001111',
  '111100111101111',
  '111001001001001',
  '111101111101111',
  '111101111001111',
];
const GLYPH_SCALE = 2;
const GLYPH_W = 4 * GLYPH_SCALE; // 3 columns + 1 spacing

/** Draws `text` (digits) in black at (left, top) of an RGBA PNG of the given width. */
function drawDigits(data: Buffer, width: number, left: number, top: number, text: string): void {
  [...text].forEach((ch, i) => {
    const glyph = DIGITS[Number(ch)];
    for (let p = 0; p < 15; p++) {
      if (glyph[p] !== '1') continue;
      const [gy, gx] = [Math.floor(p / 3), p % 3];
      for (let dy = 0; dy < GLYPH_SCALE; dy++)
        for (let dx = 0; dx < GLYPH_SCALE; dx++) {
          const x = left + i * GLYPH_W + gx * GLYPH_SCALE + dx;
          const o = ((top + gy * GLYPH_SCALE + dy) * width + x) * 4;
          data[o] = data[o + 1] = data[o + 2] = 0;
        }
    }
  });
}

/**
 * Encodes raw images [N, C, H, W] in [0, 1] (clamped), laid out as `rows` rows of `cols` tiles
 * with a 2-pixel gap, each row labelled with its class index at the left (meta.json's
 * dataset.classes names them), as a PNG. Small images are upscaled by whole pixels to >= 56 px.
 */
export function gridPng(raw: E.Tensor, rows: number, cols: number): Buffer {
  const [n, c, h0, w0] = raw.shape;
  const zoom = Math.max(1, Math.ceil(56 / Math.max(h0, w0)));
  const [h, w] = [h0 * zoom, w0 * zoom];
  const gap = 2;
  const margin = String(Math.max(0, rows - 1)).length * GLYPH_W + 2 * gap;
  const width = margin + cols * (w + gap) + gap;
  const height = rows * (h + gap) + gap;
  const png = new PNG({ width, height });
  png.data.fill(255);
  for (let r = 0; r < rows; r++)
    drawDigits(png.data, width, gap, gap + r * (h + gap) + Math.floor((h - 5 * GLYPH_SCALE) / 2), String(r));
  const pixels = E.tidy(() => raw.clamp(0, 1).mul(255).round().to('uint8').toArray()) as Uint8Array;
  for (let i = 0; i < Math.min(n, rows * cols); i++) {
    const top = gap + Math.floor(i / cols) * (h + gap);
    const left = margin + gap + (i % cols) * (w + gap);
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
