// The precision of a method's real-data side (DM's no-grad embedding pass, DC/DSA's
// real-batch gradients): one config option with one meaning for every method.
import { z } from 'zod';
import * as E from '../engine/index.js';

export type RealDtype = 'float32' | 'bfloat16';

/**
 * 'float32' | 'bfloat16' | 'auto'. 'auto' is resolved when the config is read, so run.json
 * records the choice: bfloat16 where the CPU computes it natively, float32 elsewhere.
 */
export function realDtypeOption(fallback: 'auto' | RealDtype) {
  return z
    .enum(['auto', 'float32', 'bfloat16'])
    .default(fallback)
    .transform((d): RealDtype => (d === 'auto' ? (E.cpuHasNativeBf16() ? 'bfloat16' : 'float32') : d));
}
