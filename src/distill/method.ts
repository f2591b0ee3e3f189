// The Method interface: only what is specific to a distillation method. The
// shared loop (Distiller) owns seeds, the synthetic-set optimizer, evaluation,
// checkpoints and logs.
import type { z } from 'zod';
import type * as E from '../engine/index.js';
import type { Dataset } from '../data/dataset.js';
import type { SyntheticSet } from './synthetic.js';

/** The survey's taxonomy (Yu, Liu, Wang 2024). */
export type Family = 'performance matching' | 'parameter matching' | 'distribution matching';

export interface MethodContext {
  dataset: Dataset;
  synthetic: SyntheticSet;
  /** The method's random stream (networks, real batches, augmentation draws); checkpointed. */
  gen: E.Generator;
  /** Model spec of the networks the method fetches. */
  model: string;
}

export interface StepResult {
  /** The matching loss of this iteration. */
  loss: number;
  /** Gradients for each of synthetic.learnable (null where a tensor got none). */
  grads: (E.Tensor | null)[];
}

export interface Method<Config> {
  readonly name: string;
  readonly family: Family;
  readonly subFamily: string;
  readonly summary: string;
  /** What the method needs beyond a dataset (e.g. expert trajectories). */
  readonly needs: string;
  /** Validates and fills defaults of the method's own settings. */
  readonly schema: z.ZodType<Config>;
  /** One outer iteration: the loss and the gradients of the synthetic set's learnable tensors. */
  step(ctx: MethodContext, config: Config, iteration: number): StepResult;
  /** Extra state to checkpoint (none for stateless methods). */
  stateDict?(): Record<string, E.Tensor>;
  loadStateDict?(state: Record<string, E.Tensor>): void;
}

// Methods are registered with their own config types; the registry stores them erased.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyMethod = Method<any>;
