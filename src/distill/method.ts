// The Method interface: only what is specific to a distillation method. The
// shared loop (Distiller) owns seeds, the synthetic-set optimizer, evaluation,
// checkpoints and logs.
import type { z } from 'zod';
import type * as E from '../engine/index.js';
import type { Dataset } from '../data/dataset.js';
import { evaluationModel } from '../models/index.js';
import type { LabelSpace, SyntheticSet } from './synthetic.js';

/** The survey's taxonomy (Yu, Liu, Wang 2024). */
export type Family = 'performance matching' | 'parameter matching' | 'distribution matching';

export interface MethodContext {
  dataset: Dataset;
  synthetic: SyntheticSet;
  /** The method's random stream (networks, real batches, augmentation draws); checkpointed. */
  gen: E.Generator;
  /** Model spec of the networks the method fetches. */
  model: string;
  /**
   * Applies one update of the synthetic set's optimizer with these gradients (one per
   * synthetic.learnable, null where a tensor got none) and disposes them. `loss` is the
   * matching loss they came from; a non-finite loss stops the run before the update.
   * DM calls it once per iteration; DC/DSA once per outer-loop step.
   */
  update(grads: (E.Tensor | null)[], loss: number): void;
  /**
   * The method's own tensors that persist across iterations (e.g. the momentum of
   * MTT's learning-rate optimizer); saved in checkpoints and restored on resume.
   */
  state: Map<string, E.Tensor>;
  /** The 0-based iteration being run (set by the loop). */
  iteration?: number;
  /**
   * The data-parallel group when this process is one rank of several (`distillery launch`); absent
   * for one process. A method with `dataParallel` shards its real-data side over it and all-reduces
   * the gradients it computed; every rank holds the same synthetic set and draws the same random stream.
   */
  world?: Collective;
}

/** What a method needs of a process group (engine's ProcessGroup provides it). */
export interface Collective {
  readonly rank: number;
  readonly worldSize: number;
  allReduce(tensors: E.Tensor[], op?: 'sum' | 'max' | 'min' | 'product'): void;
  barrier(): void;
}

export interface StepResult {
  /** The matching loss of this iteration (the mean over its updates). */
  loss: number;
}

export interface Method<Config> {
  readonly name: string;
  /**
   * The method runs data-parallel over `ctx.world` with the single-process result up to float
   * summation order (the Distiller refuses several processes for the others).
   */
  readonly dataParallel?: boolean;
  readonly family: Family;
  readonly subFamily: string;
  readonly summary: string;
  /** What the method needs beyond a dataset (e.g. expert trajectories). */
  readonly needs: string;
  /** The method reads networks trained on real data from `methodConfig.experts` (`distillery experts`). */
  readonly usesExperts?: boolean;
  /** Validates and fills defaults of the method's own settings. */
  readonly schema: z.ZodType<Config>;
  /**
   * Run settings this method expects when neither a preset nor a flag gives them
   * (e.g. DC: noise init, image lr 0.1); merged beneath the preset.
   */
  readonly defaults: Record<string, unknown>;
  /**
   * The model the reference evaluates on when none is given: 'S' (default; the training model with
   * batch norm replaced by instance norm, eval_mode 'S' of DC/DSA, MTT and TESLA) or 'SS' (the
   * training model itself, main_DM.py's default).
   */
  readonly evalMode?: 'S' | 'SS';
  /** Whether the objective differentiates through the labels (so they can be learned, labels.learn). */
  readonly labelGradients?: boolean;
  /** How the objective reads labels (default 'probabilities'); 'targets': KRR regression targets. */
  readonly labelSpace?: LabelSpace;
  /** Rewrites a raw config recorded by an older version into today's keys (e.g. moved settings). */
  migrate?(raw: Record<string, unknown>): Record<string, unknown>;
  /**
   * The method's own evaluation of a set besides the standard protocol (KIP/RFAD: test accuracy of kernel
   * ridge regression with the method's kernel); reported next to the protocol's numbers.
   */
  ownEvaluation?(
    synthetic: SyntheticSet,
    dataset: Dataset,
    config: Config,
    /** The method's persistent state (ctx.state), e.g. FRePo's model pool. */
    state: Map<string, E.Tensor>,
  ): { name: string; accuracy: number };
  /** Once before the first iteration of a new run (not on resume), e.g. to add a learnable lr or soft labels. */
  init?(ctx: MethodContext, config: Config): void;
  /** One outer iteration: computes matching losses and applies its updates through ctx.update. */
  step(ctx: MethodContext, config: Config, iteration: number): StepResult;
}

/**
 * The model a set distilled on `model` is evaluated on by default: `method.evalMode` 'SS' keeps it,
 * 'S' (also for coresets, `method` undefined) replaces batch norm by instance norm. Throws
 * ModelSpecError for a spec that does not parse, whichever the mode.
 *
 * @example referenceEvalModel(dm, 'ConvNetBN') // 'ConvNetBN'; with dc: 'ConvNet'
 */
export function referenceEvalModel(method: { evalMode?: 'S' | 'SS' } | undefined, model: string): string {
  const counterpart = evaluationModel(model);
  return method?.evalMode === 'SS' ? model : counterpart;
}

// Methods are registered with their own config types; the registry stores them erased.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyMethod = Method<any>;

/**
 * A context whose update() steps `optimizer` (no checks, no checkpoints): for
 * benchmarks and tests that drive a method without the Distiller.
 */
export function contextWithOptimizer(
  base: Omit<MethodContext, 'update' | 'state' | 'iteration'>,
  optimizer: E.Optimizer,
): MethodContext {
  return {
    ...base,
    state: new Map(),
    iteration: 0,
    update(grads) {
      optimizer.step(grads);
      for (const g of grads) g?.dispose();
    },
  };
}
