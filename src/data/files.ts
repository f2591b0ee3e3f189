// Reading dataset files safely: only regular files (a FIFO blocks and a device
// such as /dev/zero never ends, so readFileSync would hang or exhaust memory),
// and only files that fit in one Buffer, checked before anything is read.
import { readFileSync, statSync, type Stats } from 'node:fs';
import { DataError } from './errors.js';

/** The most bytes a dataset file (or a decompressed one) may have: readFileSync's 2 GiB limit. */
export const MAX_FILE_BYTES = 2 ** 31 - 1;

function describeKind(s: Stats): string {
  if (s.isDirectory()) return 'a directory; an image folder is given as folder:PATH';
  if (s.isFIFO()) return 'a FIFO';
  if (s.isCharacterDevice() || s.isBlockDevice()) return 'a device';
  if (s.isSocket()) return 'a socket';
  return 'not a plain file';
}

const reason = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** Checks that `path` is a regular file of at most MAX_FILE_BYTES and returns its size. */
export function checkDataFile(path: string): number {
  let s: Stats;
  try {
    s = statSync(path);
  } catch (e) {
    throw new DataError(`cannot read ${path}: ${reason(e)}`);
  }
  if (!s.isFile()) {
    throw new DataError(
      `${path} is not a regular file (${describeKind(s)}): give the path of a dataset file stored on disk`,
    );
  }
  if (s.size > MAX_FILE_BYTES) {
    throw new DataError(
      `${path} is ${(s.size / 2 ** 30).toFixed(1)} GiB, more than the 2 GiB a dataset file may have (it is read into memory whole): store images as uint8, or use fewer or smaller images`,
    );
  }
  return s.size;
}

/** The bytes of a dataset file, after checkDataFile. */
export function readDataFile(path: string): Buffer {
  checkDataFile(path);
  try {
    return readFileSync(path);
  } catch (e) {
    throw new DataError(`cannot read ${path}: ${reason(e)}`);
  }
}

/** True when zlib stopped because the output would pass its maxOutputLength. */
export function isOutputTooLarge(e: unknown): boolean {
  return e instanceof RangeError && (e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE';
}
