// The IDX format of MNIST and Fashion-MNIST (optionally gzipped): a magic number
// (0x00 0x00 <type> <ndims>), ndims big-endian uint32 sizes, then the raw data.
import { gunzipSync } from 'node:zlib';
import { DataError } from './errors.js';
import { isOutputTooLarge, MAX_FILE_BYTES, readDataFile } from './files.js';

export interface IdxArray {
  shape: number[];
  data: Uint8Array;
}

const UBYTE = 0x08;

/** Reads an unsigned-byte IDX file; `expectedDims` is 3 for images, 1 for labels. */
export function readIdx(path: string, expectedDims: number): IdxArray {
  let raw = readDataFile(path);
  if (raw.length >= 2 && raw[0] === 0x1f && raw[1] === 0x8b) {
    try {
      // Capped: a small gzip file can inflate to far more than memory holds.
      raw = gunzipSync(raw, { maxOutputLength: MAX_FILE_BYTES });
    } catch (e) {
      if (isOutputTooLarge(e))
        throw new DataError(
          `${path} decompresses to more than 2 GiB, more than an IDX dataset file holds: it is not an MNIST-like file`,
        );
      throw new DataError(
        `${path} is a corrupt gzip file (${e instanceof Error ? e.message : String(e)}); download it again`,
      );
    }
  }
  if (raw.length < 4 || raw[0] !== 0 || raw[1] !== 0) {
    throw new DataError(
      `${path} is not an IDX file: wrong magic number (first bytes ${[...raw.subarray(0, 4)].map((b) => b.toString(16).padStart(2, '0')).join(' ')})`,
    );
  }
  if (raw[2] !== UBYTE)
    throw new DataError(`${path}: IDX element type 0x${raw[2].toString(16)} is not unsigned byte (0x08)`);
  const ndims = raw[3];
  if (ndims !== expectedDims)
    throw new DataError(
      `${path}: expected a ${expectedDims}-dimensional IDX array, found ${ndims} dimensions`,
    );
  const headerBytes = 4 + 4 * ndims;
  if (raw.length < headerBytes)
    throw new DataError(
      `${path} is truncated: the header needs ${headerBytes} bytes, the file has ${raw.length}`,
    );
  const shape = Array.from({ length: ndims }, (_, i) => raw.readUInt32BE(4 + 4 * i));
  const count = shape.reduce((a, b) => a * b, 1);
  if (raw.length - headerBytes < count) {
    throw new DataError(
      `${path} is truncated: the header announces ${count} bytes of data ([${shape.join(', ')}]), the file holds ${raw.length - headerBytes}`,
    );
  }
  // Extra bytes mean the header does not describe the file (a wrong or damaged file).
  if (raw.length - headerBytes > count) {
    throw new DataError(
      `${path} holds ${raw.length - headerBytes - count} bytes more than its header announces ([${shape.join(', ')}], ${count} bytes of data): the file is damaged or not this IDX array; download it again`,
    );
  }
  return { shape, data: new Uint8Array(raw.buffer, raw.byteOffset + headerBytes, count) };
}
