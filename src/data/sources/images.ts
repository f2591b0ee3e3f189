// Decoding PNG and JPEG files to RGB pixels (pngjs, jpeg-js: pure JavaScript).
import { extname } from 'node:path';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { DataError } from '../errors.js';
import { readDataFile } from '../files.js';

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

/**
 * The largest width and height decoded. A small file can declare a huge image (a PNG of
 * 12000x12000 zeros is a few hundred kB but decodes to 576 MB of RGBA), and distillation
 * works on small images (28x28 to 64x64), so sizes are checked from the header first.
 */
export const MAX_IMAGE_SIDE = 4096;

const isPng = (buf: Buffer) => buf.length >= 8 && buf.readUInt32BE(0) === 0x89504e47;
const isJpeg = (buf: Buffer) => buf.length >= 3 && buf[0] === 0xff && buf[1] === 0xd8 && buf[2] === 0xff;

/** Width and height from a PNG's IHDR chunk, which must come first. */
function pngSize(buf: Buffer): { width: number; height: number } | null {
  if (buf.length < 24 || buf.toString('latin1', 12, 16) !== 'IHDR') return null;
  return { width: buf.readUInt32BE(16), height: buf.readUInt32BE(20) };
}

/** Width and height from a JPEG's start-of-frame segment, walking the segments before it. */
function jpegSize(buf: Buffer): { width: number; height: number } | null {
  let at = 2;
  while (at + 9 <= buf.length && buf[at] === 0xff) {
    const marker = buf[at + 1];
    // Fill bytes and markers without a length field.
    if (marker === 0xff || marker === 0x01 || (marker >= 0xd0 && marker <= 0xd8)) {
      at += marker === 0xff ? 1 : 2;
      continue;
    }
    // SOF0..SOF15, except DHT (C4), JPG (C8) and DAC (CC), which share the range.
    if (marker >= 0xc0 && marker <= 0xcf && ![0xc4, 0xc8, 0xcc].includes(marker))
      return { height: buf.readUInt16BE(at + 5), width: buf.readUInt16BE(at + 7) };
    at += 2 + buf.readUInt16BE(at + 2);
  }
  return null;
}

function checkSize(path: string, size: { width: number; height: number } | null): void {
  if (size && (size.width > MAX_IMAGE_SIDE || size.height > MAX_IMAGE_SIDE)) {
    throw new DataError(
      `${path} is ${size.width}x${size.height} pixels, more than the ${MAX_IMAGE_SIDE}x${MAX_IMAGE_SIDE} Distillery decodes: resize the images (dataset distillation works on small images such as 32x32 or 64x64)`,
    );
  }
}

export function decodeImage(path: string): DecodedImage {
  const buf = readDataFile(path);
  if (isPng(buf)) checkSize(path, pngSize(buf));
  if (isJpeg(buf)) checkSize(path, jpegSize(buf));
  try {
    if (isPng(buf)) {
      const png = PNG.sync.read(buf);
      return {
        width: png.width,
        height: png.height,
        rgba: new Uint8Array(png.data.buffer, png.data.byteOffset, png.data.length),
      };
    }
    if (isJpeg(buf)) {
      // The resolution limit backs up jpegSize should a file hide its frame header from it.
      const img = jpeg.decode(buf, {
        useTArray: true,
        formatAsRGBA: true,
        maxMemoryUsageInMB: 512,
        maxResolutionInMP: (MAX_IMAGE_SIDE * MAX_IMAGE_SIDE) / 1e6,
      });
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
