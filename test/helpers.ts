// Assertions shared by the tests.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import type { Tensor } from '../src/engine/index.js';

export function assertClose(
  actual: Tensor | number[] | number,
  expected: number[] | number,
  tol = 1e-5,
  what = 'value',
): void {
  const a = typeof actual === 'number' ? [actual] : Array.isArray(actual) ? actual : actual.toNumbers();
  const e = typeof expected === 'number' ? [expected] : expected;
  assert.equal(a.length, e.length, `${what}: ${a.length} elements, expected ${e.length}`);
  for (let i = 0; i < a.length; i++) {
    const err = Math.abs(a[i] - e[i]);
    assert.ok(
      err <= tol * Math.max(1, Math.abs(e[i])),
      `${what}[${i}] = ${a[i]}, expected ${e[i]} (tolerance ${tol})`,
    );
  }
}

export function assertShape(t: Tensor, shape: number[]): void {
  assert.deepEqual(t.shape, shape);
}

/** A python3 that can import NumPy (for the interoperability tests), or undefined. */
export function pythonWithNumpy(): string | undefined {
  return ['/usr/bin/python3', 'python3'].find(
    (p) => spawnSync(p, ['-c', 'import numpy'], { stdio: 'ignore' }).status === 0,
  );
}
