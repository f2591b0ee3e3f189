// Precision options with one meaning everywhere: a method's real-data side (DM's no-grad
// embedding pass, DC/DSA's real-batch gradients) and the evaluation networks' training
// (bfloat16 mixed precision, eval/protocol.ts).
import { z } from 'zod';
import * as E from '../engine/index.js';
import type { TrainingPrecision } from '../eval/index.js';

/** The two precisions, one type for every option (eval/protocol.ts defines it, below distill/). */
export type RealDtype = TrainingPrecision;

/**
 * 'float32' | 'bfloat16' | 'auto'. 'auto' is resolved when the config is read, so run.json
 * records the choice: bfloat16 where the CPU computes it natively, float32 elsewhere.
 */
export function precisionOption(fallback: 'auto' | RealDtype) {
  return z
    .enum(['auto', 'float32', 'bfloat16'])
    .default(fallback)
    .transform((d): RealDtype => (d === 'auto' ? (E.cpuHasNativeBf16() ? 'bfloat16' : 'float32') : d));
}
