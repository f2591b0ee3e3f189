// Every method, by name. A method registers itself in its own file (registerMethod at its
// declaration); methods/index.ts imports the built-in method files, and whoever looks methods up
// imports it (config.ts does), so the registry itself imports no method.
import type { AnyMethod } from './method.js';

const registered: AnyMethod[] = [];
/** The registered methods (a live view: methods registered later appear too). */
export const METHODS: readonly AnyMethod[] = registered;

/** Adds a method (built in, or defined outside this package); its name must be new. Returns it. */
export function registerMethod<M extends AnyMethod>(m: M): M {
  if (registered.some((x) => x.name === m.name))
    throw new Error(`a method named '${m.name}' is already registered`);
  registered.push(m);
  return m;
}

export function getMethod(name: string): AnyMethod {
  const m = METHODS.find((x) => x.name === name);
  if (!m)
    throw new Error(
      `unknown method '${name}' (available: ${METHODS.map((x) => x.name).join(', ')}; see \`distillery methods\`)`,
    );
  return m;
}
