// Assertions shared by the tests.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as E from '../src/engine/index.js';
import type { Tensor } from '../src/engine/index.js';
import type { NetState, Network } from '../src/models/index.js';

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

/**
 * A golden fixture written by test/fixtures/reference/generate.py from the original PyTorch code
 * (DatasetCondensation, mtt-distillation, tesla); `get` fails with the key's name when it is missing.
 */
export function referenceFixture(name: string): {
  get: (key: string) => Tensor;
  has: (key: string) => boolean;
  meta: Record<string, string>;
} {
  const path = fileURLToPath(new URL(`../../test/fixtures/reference/${name}.safetensors`, import.meta.url));
  const file = E.loadSafetensors(path);
  return {
    get: (key) => {
      const t = file.tensors[key];
      assert.ok(t, `fixture ${name} has no tensor '${key}'`);
      return t;
    },
    has: (key) => key in file.tensors,
    meta: file.metadata,
  };
}

/** max |a - b| <= tol * max |b| (tensors of one shape): a relative check for whole gradients. */
export function assertAllClose(actual: Tensor, expected: Tensor, tol: number, what: string): void {
  assert.deepEqual(actual.shape, expected.shape, `${what}: shape`);
  const a = actual.double();
  const b = expected.double();
  const diff = a.sub(b).abs().max().item();
  const scale = b.abs().max().item();
  assert.ok(scale > 0 || diff === 0, `${what}: the reference is all zeros`);
  assert.ok(
    diff <= tol * Math.max(scale, 1e-30),
    `${what}: max difference ${diff} against scale ${scale} (tolerance ${tol})`,
  );
}

/** A network state holding the reference's weights (`prefix.i`, parameters in definition order, shapes checked). */
export function withWeights(net: Network, get: (key: string) => Tensor, prefix = 'param'): NetState {
  const state = net.init(new E.Generator(0));
  [...state.params.keys()].forEach((name, i) => {
    const w = get(`${prefix}.${i}`);
    assert.deepEqual(w.shape, state.params.get(name)?.shape, `${name} shape`);
    state.params.get(name)?.dispose();
    state.params.set(name, w.clone());
  });
  return state;
}
