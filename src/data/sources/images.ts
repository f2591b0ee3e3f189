// Decoding PNG and JPEG files to RGB pixels (pngjs, jpeg-js: pure JavaScript).
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { DataError } from '../errors.js';

export interface DecodedImage {
  width: number;
  height: number;
  /** RGBA, 4 bytes per pixel, row-major. */
  rgba: Uint8Array;
}

export const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg']);

export function isImageFile(path: string): boolean {
  return IMAGE_EXTENSIONS.has(extname(path).toLowerCase());
}

export function decodeImage(path: string): DecodedImage {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (e) {
    throw new DataError(`cannot read ${path}: ${e instanceof Error ? e.message : String(e)}`);
  }
  try {
    if (buf.length >= 8 && buf.readUInt32BE(0) === 0x89504e47) {
      const png = PNG.sync.read(buf);
      return {
        width: png.width,
        height: png.height,
        rgba: new Uint8Array(png.data.buffer, png.data.byteOffset, png.data.length),
      };
    }
    if (buf.length >= 3 && buf[0] === 0xff && buf[1] === 0xd8 && buf[2] === 0xff) {
      const img = jpeg.decode(buf, { useTArray: true, formatAsRGBA: true, maxMemoryUsageInMB: 512 });
      return { width: img.width, height: img.height, rgba: img.data };
    }
  } catch (e) {
    throw new DataError(`${path} is not a readable image: ${e instanceof Error ? e.message : String(e)}`);
  }
  throw new DataError(`${path} is not a PNG or JPEG image (unrecognised file signature)`);
}

/** True when every pixel has R = G = B. */
export function isGray(img: DecodedImage): boolean {
  const d = img.rgba;
  for (let i = 0; i < d.length; i += 4) if (d[i] !== d[i + 1] || d[i] !== d[i + 2]) return false;
  return true;
}

/** Writes the image's channels (1: gray from R, 3: RGB) into `out` at `offset`, in C x H x W order. */
export function writeChw(img: DecodedImage, channels: 1 | 3, out: Uint8Array, offset: number): void {
  const plane = img.width * img.height;
  for (let p = 0; p < plane; p++) {
    for (let c = 0; c < channels; c++) out[offset + c * plane + p] = img.rgba[4 * p + c];
  }
}
