// Every method, by name. Adding a method: one file in methods/ and one line here.
import type { AnyMethod } from './method.js';
import { dc, dsa } from './methods/dc.js';
import { dm } from './methods/dm.js';
import { mtt, tesla } from './methods/mtt.js';

export const METHODS: readonly AnyMethod[] = [dc, dsa, mtt, tesla, dm];

export function getMethod(name: string): AnyMethod {
  const m = METHODS.find((x) => x.name === name);
  if (!m)
    throw new Error(
      `unknown method '${name}' (available: ${METHODS.map((x) => x.name).join(', ')}; see \`distillery methods\`)`,
    );
  return m;
}
