// Helpers shared by the benchmark scripts.
import * as E from '../src/engine/index.js';
import type { RealDtype } from '../src/distill/precision.js';

/** The real-side precisions worth timing here: float32, and bfloat16 where the CPU has it natively. */
export function realPrecisions(): RealDtype[] {
  return E.cpuHasNativeBf16() ? ['float32', 'bfloat16'] : ['float32'];
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** The value after `--name` on the command line, or the fallback. */
export function numberFlag(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}
