// Deterministic release of native memory.
//
// `tidy(fn)` runs fn in a scope: every tensor created inside is disposed when fn
// returns, except those in its return value (which move to the enclosing scope)
// and those passed to `keep()`. Garbage-collection finalizers remain a safety net
// for tensors created outside any scope, but long loops should use tidy.

/** Anything a scope can own and release. Tensor implements it. */
export interface ScopeOwned {
  dispose(): void;
  /** Called when the object is left without a scope: it now relies on GC finalizers. */
  unscoped(): void;
  /** The scope that will release this object, or null. */
  scope: Set<ScopeOwned> | null;
}

export const SCOPE_OWNED = Symbol('distillery.scopeOwned');

const stack: Set<ScopeOwned>[] = [];

/** Registers a newly created object with the innermost open scope, if any. */
export function track(obj: ScopeOwned): void {
  const scope = stack[stack.length - 1];
  if (scope) {
    scope.add(obj);
    obj.scope = scope;
  } else obj.unscoped();
}

/** Removes obj from its scope (on dispose, or to keep it alive past the scope). */
export function untrack(obj: ScopeOwned): void {
  obj.scope?.delete(obj);
  obj.scope = null;
}

/** Keeps obj alive after the enclosing tidy() scopes end; the caller disposes it. */
export function keep<T extends ScopeOwned>(obj: T): T {
  if (obj.scope) {
    untrack(obj);
    obj.unscoped();
  }
  return obj;
}

function isOwned(x: unknown): x is ScopeOwned {
  return typeof x === 'object' && x !== null && SCOPE_OWNED in x;
}

/** Finds scope-owned objects in a tidy() result: the value itself, arrays, plain objects and Maps. */
function collect(value: unknown, into: Set<ScopeOwned>, seen = new Set<unknown>()): void {
  if (typeof value !== 'object' || value === null || seen.has(value)) return;
  seen.add(value);
  if (isOwned(value)) {
    into.add(value);
    return;
  }
  if (Array.isArray(value)) {
    for (const v of value) collect(v, into, seen);
  } else if (value instanceof Map) {
    for (const v of value.values()) collect(v, into, seen);
  } else if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) collect(v, into, seen);
  }
}

export function tidy<T>(fn: () => T): T {
  const scope = new Set<ScopeOwned>();
  stack.push(scope);
  let result: T | undefined;
  try {
    result = fn();
    if (result instanceof Promise) {
      throw new Error(
        'tidy() cannot wrap an async function: tensors would be released before the promise settles',
      );
    }
    return result;
  } finally {
    stack.pop();
    const survivors = new Set<ScopeOwned>();
    collect(result, survivors);
    const parent = stack[stack.length - 1] ?? null;
    for (const obj of scope) {
      if (survivors.has(obj)) {
        obj.scope = parent;
        if (parent) parent.add(obj);
        else obj.unscoped();
      } else {
        obj.scope = null;
        obj.dispose();
      }
    }
  }
}

/** Number of tensors owned by open scopes (for tests and leak hunting). */
export function scopeDepth(): number {
  return stack.length;
}
