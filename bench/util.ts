// Helpers shared by the benchmark scripts.
import * as E from '../src/engine/index.js';
import type { RealDtype } from '../src/distill/precision.js';
import { median as medianOf } from '../src/util/stats.js';

/** The real-side precisions worth timing here: float32, and bfloat16 where the CPU has it natively. */
export function realPrecisions(): RealDtype[] {
  return E.cpuHasNativeBf16() ? ['float32', 'bfloat16'] : ['float32'];
}

/** The median of the timings (at least one). */
export function median(xs: number[]): number {
  const m = medianOf(xs);
  if (m === undefined) throw new Error('median of no values');
  return m;
}

/** The value after `--name` on the command line, or the fallback. */
export function numberFlag(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}
