// Every method, by name. Adding a method: one file in methods/ and one line here.
import type { AnyMethod } from './method.js';
import { dc, dsa } from './methods/dc.js';
import { dm } from './methods/dm.js';
import { mtt, tesla } from './methods/mtt.js';

const registered: AnyMethod[] = [dc, dsa, mtt, tesla, dm];
export const METHODS: readonly AnyMethod[] = registered;

/** Adds a method (e.g. one defined outside this package); its name must be new. */
export function registerMethod(m: AnyMethod): void {
  if (registered.some((x) => x.name === m.name))
    throw new Error(`a method named '${m.name}' is already registered`);
  registered.push(m);
}

export function getMethod(name: string): AnyMethod {
  const m = METHODS.find((x) => x.name === name);
  if (!m)
    throw new Error(
      `unknown method '${name}' (available: ${METHODS.map((x) => x.name).join(', ')}; see \`distillery methods\`)`,
    );
  return m;
}
