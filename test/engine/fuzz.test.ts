// Every export of the raw binding, called with hostile arguments (wrong types, out-of-range enum
// codes, NaN/Infinity/non-integer sizes, disposed or foreign handles, missing arguments), in a
// child process: each call must return or throw a JavaScript Error, and the process must survive
// (an abort or a segfault would end the child early). Calls that could allocate without bound are
// not in the pool (sizes stay tiny or absurd).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ENGINE = fileURLToPath(new URL('../../src/engine/index.js', import.meta.url));
const NATIVE = fileURLToPath(new URL('../../src/engine/native.js', import.meta.url));

// Runs in the child: a seeded walk over (export x argument vector), printing each call before making it.
const CHILD = `
const E = await import(${JSON.stringify(ENGINE)});
const { native } = await import(${JSON.stringify(NATIVE)});
let s = 12345;
const rnd = (n) => { s = (Math.imul(s, 1103515245) + 12345) >>> 0; return s % n; };
const t = () => E.ones([2, 2]).handle;
const disposed = () => { const x = E.ones([2]); const h = x.handle; x.dispose(); return h; };
const pool = [
  () => undefined, () => null, () => NaN, () => Infinity, () => -Infinity, () => -1, () => 0, () => 1, () => 2.5,
  () => 99, () => 255, () => -99, () => 1e18, () => 2 ** 63, () => 'x', () => '', () => 'cuda:99', () => {}, () => ({}),
  () => [], () => [NaN], () => [2, NaN], () => [2, 2], () => [1e18, 1e18], () => [-1], () => [1.5], () => ['a'],
  t, () => [t(), t()], () => [t(), 'x'], disposed, () => native.generatorNew(1), () => new Float32Array(3),
  () => true, () => Symbol('s'), () => 10n,
];
const skip = new Set(['setNumThreads', 'allocatorEmptyCache', 'allocatorSetCacheLimit']);
const names = Object.keys(native).filter((k) => typeof native[k] === 'function' && !skip.has(k)).sort();
let calls = 0;
for (const name of names) {
  for (let trial = 0; trial < 200; trial++) {
    const arity = rnd(7);
    const args = Array.from({ length: arity }, () => pool[rnd(pool.length)]());
    process.stdout.write(name + ' ' + trial + '\\n');
    try {
      native[name](...args);
    } catch (e) {
      if (!(e instanceof Error)) throw new Error(name + ' threw a non-Error: ' + String(e));
    }
    calls++;
  }
}
// The process is intact: the engine still computes.
if (E.ones([2]).add(1).sum().item() !== 4) throw new Error('the engine is broken after the fuzzing');
process.stdout.write('DONE ' + calls + ' calls over ' + names.length + ' exports\\n');
`;

test('the raw binding survives hostile arguments on every export (no abort, only JavaScript errors)', () => {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', CHILD], {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    env: { ...process.env, OMP_NUM_THREADS: '1' },
  });
  const lines = r.stdout.trim().split('\n');
  const last = lines[lines.length - 1] ?? '';
  assert.equal(r.signal, null, `the process died (${r.signal}) during: ${last}\n${r.stderr.slice(-500)}`);
  assert.equal(r.status, 0, `exit ${r.status} after: ${last}\n${r.stderr.slice(-800)}`);
  assert.match(last, /^DONE \d+ calls over \d+ exports$/);
  const exports = Number(/over (\d+) exports/.exec(last)?.[1]);
  assert.ok(exports > 150, `covered ${exports} exports`);
});

test('out-of-range dtype codes and non-integer sizes are refused with a clear message', async () => {
  const { native } = await import('../../src/engine/native.js');
  assert.throws(() => native.zeros([2, 2], 99, null), /dtype code 99/);
  assert.throws(() => native.zeros([2, 2], -1, null), /dtype code -1/);
  assert.throws(() => native.zeros([2, NaN], 6, null), /argument 0 must be an array of integers/);
  assert.throws(() => native.zeros([2, 2.5], 6, null), /argument 0 must be an array of integers/);
  assert.throws(() => native.randperm(NaN, 4, null, null), /argument 0 must be an integer/);
});
