// A reader for the numeric arrays of MATLAB v5 .mat files (what SVHN's format-2
// files are): top-level, optionally zlib-compressed, miMATRIX elements.
import { inflateSync } from 'node:zlib';
import { DataError } from '../errors.js';
import { isOutputTooLarge, MAX_FILE_BYTES } from '../files.js';

export interface MatArray {
  /** MATLAB dimensions, column-major order of `data`. */
  dims: number[];
  data: ArrayLike<number>;
}

const MI_MATRIX = 14;
const MI_COMPRESSED = 15;
const NUMERIC: Record<number, (b: Buffer, o: number, n: number) => ArrayLike<number>> = {
  1: (b, o, n) => new Int8Array(b.buffer.slice(b.byteOffset + o, b.byteOffset + o + n)),
  2: (b, o, n) => b.subarray(o, o + n),
  3: (b, o, n) => Int16Array.from({ length: n / 2 }, (_, i) => b.readInt16LE(o + 2 * i)),
  4: (b, o, n) => Uint16Array.from({ length: n / 2 }, (_, i) => b.readUInt16LE(o + 2 * i)),
  5: (b, o, n) => Int32Array.from({ length: n / 4 }, (_, i) => b.readInt32LE(o + 4 * i)),
  6: (b, o, n) => Uint32Array.from({ length: n / 4 }, (_, i) => b.readUInt32LE(o + 4 * i)),
  7: (b, o, n) => Float32Array.from({ length: n / 4 }, (_, i) => b.readFloatLE(o + 4 * i)),
  9: (b, o, n) => Float64Array.from({ length: n / 8 }, (_, i) => b.readDoubleLE(o + 8 * i)),
};

interface Element {
  type: number;
  start: number;
  size: number;
  next: number;
}

function element(buf: Buffer, at: number, path: string): Element {
  if (at + 8 > buf.length) throw new DataError(`${path} is truncated (data element header at byte ${at})`);
  const first = buf.readUInt32LE(at);
  if (first >>> 16 !== 0) {
    // Small data element: type and size share the first word, data in the second.
    return { type: first & 0xffff, start: at + 4, size: first >>> 16, next: at + 8 };
  }
  const size = buf.readUInt32LE(at + 4);
  if (at + 8 + size > buf.length)
    throw new DataError(`${path} is truncated: an element of ${size} bytes at byte ${at} runs past the end`);
  return { type: first, start: at + 8, size, next: at + 8 + size + ((8 - (size % 8)) % 8) };
}

function parseMatrix(buf: Buffer, m: Element, path: string): [string, MatArray] {
  let at = m.start;
  const end = m.start + m.size;
  const flags = element(buf, at, path);
  at = flags.next;
  const dimsEl = element(buf, at, path);
  const dims = Array.from({ length: dimsEl.size / 4 }, (_, i) => buf.readInt32LE(dimsEl.start + 4 * i));
  at = dimsEl.next;
  const nameEl = element(buf, at, path);
  const name = buf.subarray(nameEl.start, nameEl.start + nameEl.size).toString('latin1');
  at = nameEl.next;
  if (at >= end) throw new DataError(`${path}: variable '${name}' has no data`);
  const real = element(buf, at, path);
  const read = NUMERIC[real.type];
  if (!read) throw new DataError(`${path}: variable '${name}' has unsupported element type ${real.type}`);
  const data = read(buf, real.start, real.size);
  const count = dims.reduce((a, b) => a * b, 1);
  if (data.length !== count)
    throw new DataError(
      `${path}: variable '${name}' has ${data.length} values for dimensions [${dims.join(', ')}]`,
    );
  return [name, { dims, data }];
}

/** All numeric variables of a v5 .mat file by name. */
export function readMatV5(raw: Buffer, path: string): Map<string, MatArray> {
  if (raw.length < 128 || raw.toString('latin1', 126, 128) !== 'IM') {
    throw new DataError(
      `${path} is not a MATLAB v5 .mat file (little-endian 'IM' marker missing at byte 126)`,
    );
  }
  const out = new Map<string, MatArray>();
  let at = 128;
  while (at < raw.length) {
    const el = element(raw, at, path);
    if (el.type === MI_COMPRESSED) {
      let inner: Buffer;
      try {
        // Capped: a small compressed element can inflate to far more than memory holds.
        inner = inflateSync(raw.subarray(el.start, el.start + el.size), { maxOutputLength: MAX_FILE_BYTES });
      } catch (e) {
        if (isOutputTooLarge(e))
          throw new DataError(
            `${path}: a compressed element at byte ${at} inflates to more than 2 GiB, more than a dataset variable may have`,
          );
        throw new DataError(
          `${path}: a compressed element at byte ${at} is corrupt (${e instanceof Error ? e.message : String(e)})`,
        );
      }
      const m = element(inner, 0, path);
      if (m.type === MI_MATRIX) {
        const [name, arr] = parseMatrix(inner, m, path);
        out.set(name, arr);
      }
    } else if (el.type === MI_MATRIX) {
      const [name, arr] = parseMatrix(raw, el, path);
      out.set(name, arr);
    }
    at = el.next;
  }
  return out;
}
