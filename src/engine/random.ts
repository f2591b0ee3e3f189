// Seeded random number generators. Every random choice in Distillery flows from
// a Generator created from a recorded seed; nothing is seeded from the clock.
import { native, type GeneratorHandle } from './native.js';
import { Tensor } from './tensor.js';
import { EngineError } from './errors.js';

export class Generator {
  readonly handle: GeneratorHandle;

  constructor(readonly seed: number) {
    if (!Number.isSafeInteger(seed) || seed < 0) {
      throw new EngineError('Generator', `seed must be a non-negative integer, got ${seed}`);
    }
    this.handle = native.generatorNew(seed);
  }

  /** The full generator state (a uint8 tensor), for checkpoints. */
  getState(): Tensor {
    return new Tensor(native.generatorGetState(this.handle));
  }

  setState(state: Tensor): void {
    try {
      native.generatorSetState(this.handle, state.handle);
    } catch (e) {
      throw new EngineError('Generator.setState', e instanceof Error ? e.message : String(e));
    }
  }
}

/** Seeds libtorch's global generator (used by random ops called without a generator). */
export function manualSeed(seed: number): void {
  if (!Number.isSafeInteger(seed) || seed < 0)
    throw new EngineError('manualSeed', `seed must be a non-negative integer, got ${seed}`);
  native.manualSeed(seed);
}
