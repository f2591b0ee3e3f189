// Reading and writing safetensors files: an 8-byte little-endian header length,
// a JSON header (dtype, shape, byte offsets per tensor, plus string metadata),
// then the raw little-endian element bytes. PyTorch, NumPy and JAX users load
// these with the `safetensors` package. Writes go to a temp file renamed into
// place, so an existing file is never left half-written.
import { readFileSync } from 'node:fs';
import { DTYPE_BYTES, dtypeCode, type DType } from './dtype.js';
import { EngineError } from './errors.js';
import { writeFileAtomic } from './files.js';
import { native } from './native.js';
import { Tensor } from './tensor.js';
import type { Device } from './device.js';

const CODES: Readonly<Record<DType, string>> = {
  float32: 'F32',
  float64: 'F64',
  float16: 'F16',
  bfloat16: 'BF16',
  int64: 'I64',
  int32: 'I32',
  int16: 'I16',
  int8: 'I8',
  uint8: 'U8',
  bool: 'BOOL',
};
const FROM_CODE = new Map<string, DType>(Object.entries(CODES).map(([k, v]) => [v, k as DType]));
const MAX_HEADER = 100 * 1024 * 1024;

interface Entry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

export interface SafetensorsFile {
  tensors: Record<string, Tensor>;
  metadata: Record<string, string>;
}

/** Writes tensors (and string metadata) to `path` atomically. */
export function saveSafetensors(
  path: string,
  tensors: Record<string, Tensor>,
  metadata: Record<string, string> = {},
): void {
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== 'string')
      throw new EngineError('saveSafetensors', `metadata '${k}' must be a string, got ${typeof v}`);
  }
  const names = Object.keys(tensors).sort();
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  const blobs: Uint8Array[] = [];
  let offset = 0;
  for (const name of names) {
    if (name === '__metadata__')
      throw new EngineError('saveSafetensors', "'__metadata__' is reserved and cannot name a tensor");
    const t = tensors[name];
    const bytes = new Uint8Array(native.toData(t.handle));
    header[name] = { dtype: CODES[t.dtype], shape: t.shape, data_offsets: [offset, offset + bytes.length] };
    blobs.push(bytes);
    offset += bytes.length;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8); // align the data section to 8 bytes
  const head = Buffer.alloc(8 + Buffer.byteLength(json));
  head.writeBigUInt64LE(BigInt(Buffer.byteLength(json)), 0);
  head.write(json, 8, 'utf8');

  try {
    writeFileAtomic(path, [head, ...blobs]);
  } catch (e) {
    throw new EngineError('saveSafetensors', e instanceof Error ? e.message : String(e));
  }
}

function corrupt(path: string, what: string): EngineError {
  return new EngineError('loadSafetensors', `${path} is not a valid safetensors file: ${what}`);
}

/** Reads a safetensors file, validating the header against the data it describes. */
export function loadSafetensors(path: string, o: { device?: Device } = {}): SafetensorsFile {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (e) {
    throw new EngineError(
      'loadSafetensors',
      `cannot read ${path}: ${e instanceof Error ? e.message : String(e)}`,
    );
  }
  if (buf.length < 8)
    throw corrupt(path, `file is ${buf.length} bytes, shorter than the 8-byte header length`);
  const headerLength = Number(buf.readBigUInt64LE(0));
  if (headerLength > MAX_HEADER || 8 + headerLength > buf.length) {
    throw corrupt(path, `header length ${headerLength} does not fit in a file of ${buf.length} bytes`);
  }
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(buf.subarray(8, 8 + headerLength).toString('utf8')) as Record<string, unknown>;
  } catch (e) {
    throw corrupt(path, `header is not JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header))
    throw corrupt(path, 'header is not a JSON object');
  const dataStart = 8 + headerLength;
  const dataLength = buf.length - dataStart;
  const metadata = (header.__metadata__ ?? {}) as Record<string, string>;
  const tensors: Record<string, Tensor> = {};
  try {
    for (const [name, raw] of Object.entries(header)) {
      if (name === '__metadata__') continue;
      const e = raw as Entry;
      const dtype = FROM_CODE.get(e?.dtype);
      if (!dtype) throw corrupt(path, `tensor '${name}' has unsupported dtype ${JSON.stringify(e?.dtype)}`);
      if (!Array.isArray(e.shape) || !e.shape.every((s) => Number.isInteger(s) && s >= 0)) {
        throw corrupt(path, `tensor '${name}' has an invalid shape ${JSON.stringify(e.shape)}`);
      }
      const [begin, end] = Array.isArray(e.data_offsets) ? e.data_offsets : [NaN, NaN];
      if (
        !Number.isInteger(begin) ||
        !Number.isInteger(end) ||
        begin < 0 ||
        end < begin ||
        end > dataLength
      ) {
        throw corrupt(
          path,
          `tensor '${name}' has data offsets ${JSON.stringify(e.data_offsets)} outside the ${dataLength}-byte data section (file truncated?)`,
        );
      }
      const expected = e.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[dtype];
      if (end - begin !== expected) {
        throw corrupt(
          path,
          `tensor '${name}' of shape [${e.shape.join(', ')}] (${dtype}) needs ${expected} bytes, offsets give ${end - begin}`,
        );
      }
      const bytes = buf.subarray(dataStart + begin, dataStart + end);
      const t = new Tensor(native.fromData(bytes, e.shape, dtypeCode(dtype)));
      if (o.device && o.device !== 'cpu') {
        tensors[name] = t.to({ device: o.device });
        t.dispose();
      } else tensors[name] = t;
    }
  } catch (err) {
    for (const t of Object.values(tensors)) t.dispose();
    throw err;
  }
  return { tensors, metadata };
}
