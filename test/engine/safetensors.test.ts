import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as E from '../../src/engine/index.js';
import { pythonWithNumpy } from '../helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'distillery-st-'));

test('round trip of every dtype with metadata; no temp file left behind', () => {
  const gen = new E.Generator(1);
  const tensors: Record<string, E.Tensor> = {
    f32: E.randn([2, 3], { generator: gen }),
    f64: E.randn([4], { dtype: 'float64', generator: gen }),
    i64: E.tensor([-5, 7, 2 ** 40], { dtype: 'int64' }),
    i32: E.tensor([1, -2], { dtype: 'int32' }),
    u8: E.tensor([0, 255], { dtype: 'uint8' }),
    bool: E.tensor([true, false, true]),
    bf16: E.tensor([0.5, -2], { dtype: 'bfloat16' }),
    f16: E.tensor([0.25, 3], { dtype: 'float16' }),
    scalar: E.tensor(3, { shape: [] }),
    empty: E.zeros([0, 4]),
  };
  const path = join(dir, 'all.safetensors');
  E.saveSafetensors(path, tensors, { format: 'distillery', note: 'ü unicode' });
  assert.deepEqual(readdirSync(dir), ['all.safetensors']);
  const { tensors: back, metadata } = E.loadSafetensors(path);
  assert.deepEqual(metadata, { format: 'distillery', note: 'ü unicode' });
  assert.deepEqual(Object.keys(back).sort(), Object.keys(tensors).sort());
  for (const [k, t] of Object.entries(tensors)) {
    assert.equal(back[k].dtype, t.dtype, k);
    assert.deepEqual(back[k].shape, t.shape, k);
    assert.deepEqual(back[k].toList(), t.toList(), k);
  }
  // The data section starts 8-byte aligned, as the format recommends.
  const n = Number(readFileSync(path).readBigUInt64LE(0));
  assert.equal((8 + n) % 8, 0);
});

test('overwriting is atomic: a failed write leaves the old file intact', () => {
  const path = join(dir, 'keep.safetensors');
  E.saveSafetensors(path, { a: E.ones([2]) });
  assert.throws(
    () => E.saveSafetensors(path, { a: E.ones([2]) }, { bad: 5 as unknown as string }),
    /metadata 'bad' must be a string/,
  );
  assert.throws(
    () => E.saveSafetensors(join(dir, 'missing-dir', 'x.safetensors'), { a: E.ones([1]) }),
    /cannot write .*missing-dir/,
  );
  assert.deepEqual(E.loadSafetensors(path).tensors.a.toList(), [1, 1]);
});

test('corrupt files are rejected with the file name and the problem', () => {
  const good = join(dir, 'good.safetensors');
  E.saveSafetensors(good, { w: E.ones([4, 4]) });
  const bytes = readFileSync(good);
  const cases: [string, Buffer, RegExp][] = [
    ['tiny', Buffer.from([1, 2, 3]), /shorter than the 8-byte header length/],
    ['truncated', bytes.subarray(0, bytes.length - 10), /outside the .*data section \(file truncated\?\)/],
    [
      'huge-header',
      Buffer.concat([Buffer.from([255, 255, 255, 255, 0, 0, 0, 0]), bytes.subarray(8)]),
      /header length .* does not fit/,
    ],
    [
      'not-json',
      Buffer.concat([
        bytes.subarray(0, 8),
        Buffer.from('x'.repeat(bytes.readUInt32LE(0))),
        bytes.subarray(8 + bytes.readUInt32LE(0)),
      ]),
      /header is not JSON/,
    ],
  ];
  for (const [name, content, pattern] of cases) {
    const p = join(dir, `${name}.safetensors`);
    writeFileSync(p, content);
    assert.throws(
      () => E.loadSafetensors(p),
      (e: Error) => pattern.test(e.message) && e.message.includes(p),
      name,
    );
  }
  assert.throws(() => E.loadSafetensors(join(dir, 'nope.safetensors')), /cannot read .*nope\.safetensors/);
});

test('Python with NumPy reads our files byte for byte (skipped when python3 has no numpy)', (t) => {
  const python = pythonWithNumpy();
  if (!python) {
    t.skip('no python3 with numpy on this machine');
    return;
  }
  const path = join(dir, 'py.safetensors');
  E.saveSafetensors(
    path,
    {
      x: E.tensor([
        [1.5, -2],
        [3, 4],
      ]),
      y: E.tensor([7, 8, 9], { dtype: 'int64' }),
    },
    { k: 'v' },
  );
  // A reader written from the format description alone (no safetensors package needed).
  const script = `
import json, struct, sys, numpy as np
raw = open(sys.argv[1], 'rb').read()
n = struct.unpack('<Q', raw[:8])[0]
header = json.loads(raw[8:8 + n])
data = raw[8 + n:]
types = {'F32': np.float32, 'I64': np.int64}
out = {'meta': header['__metadata__']}
for name in ('x', 'y'):
    e = header[name]
    a, b = e['data_offsets']
    out[name] = np.frombuffer(data[a:b], dtype=types[e['dtype']]).reshape(e['shape']).tolist()
print(json.dumps(out))
`;
  const result = JSON.parse(execFileSync(python, ['-c', script, path], { encoding: 'utf8' }));
  assert.deepEqual(result, {
    meta: { k: 'v' },
    x: [
      [1.5, -2],
      [3, 4],
    ],
    y: [7, 8, 9],
  });
});
