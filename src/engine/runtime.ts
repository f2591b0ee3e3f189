// Process-wide engine settings: threads, versions, native memory statistics.
import { readFileSync } from 'node:fs';
import { EngineError } from './errors.js';
import { native, type AllocatorStats } from './native.js';

export type { AllocatorStats };

export function getNumThreads(): number {
  return native.getNumThreads();
}

/** Threads libtorch uses for intra-op parallelism (all available cores by default). */
export function setNumThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1)
    throw new EngineError('setNumThreads', `needs a positive integer, got ${n}`);
  native.setNumThreads(n);
}

export function torchVersion(): string {
  return native.torchVersion();
}

/** Statistics of the addon's caching CPU allocator (bytes in use vs. cached for reuse). */
export function allocatorStats(): AllocatorStats {
  return native.allocatorStats();
}

/** Returns cached (free) native blocks to the system. */
export function emptyCache(): void {
  native.allocatorEmptyCache();
}

/** Caps the bytes the allocator keeps cached; blocks freed beyond it go back to the system. */
export function setCacheLimit(bytes: number): void {
  native.allocatorSetCacheLimit(bytes);
}

export function resetPeakMemory(): void {
  native.allocatorResetPeak();
}

/**
 * Bytes of live tensors reported to V8 as external memory: those outside any
 * tidy() scope, which only dispose() or GC finalizers release.
 */
export function unscopedTensorBytes(): number {
  return native.reportedExternalBytes();
}

let nativeBf16: boolean | undefined;

/**
 * Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX-BF16), where oneDNN's
 * bfloat16 convolutions are about twice as fast as float32. Elsewhere bfloat16 is emulated
 * and slower, so callers that pick a precision for speed should check this first.
 */
export function cpuHasNativeBf16(): boolean {
  if (nativeBf16 === undefined) {
    let flags = '';
    try {
      flags = readFileSync('/proc/cpuinfo', 'utf8');
    } catch {
      // Not Linux: no way to tell cheaply, so assume emulation.
    }
    nativeBf16 = /\b(avx512_bf16|amx_bf16)\b/.test(flags);
  }
  return nativeBf16;
}
