// The library loop every distillation shares (the Distiller, `distill()` and the benchmarks call
// it; nobody copies it): a Session holds the dataset, method, synthetic set, random stream, the
// per-group optimizer and the method's persistent state; runIterations() runs method.step over a
// range of iterations; sessionState()/restoreSession() are its checkpoint. A resumed session ends
// bit-identical to an uninterrupted one: all randomness flows from the one checkpointed generator.
import * as E from '../engine/index.js';
import type { Dataset } from '../data/dataset.js';
import type { DistillConfig } from './config.js';
import type { AnyMethod, MethodContext } from './method.js';
import { GroupOptimizer, type GroupOptimizerState } from './optimizers.js';
import './methods/index.js';
import { getMethod } from './registry.js';
import { SyntheticSet, type InitKind } from './synthetic.js';

export interface Session {
  config: DistillConfig;
  method: AnyMethod;
  dataset: Dataset;
  synthetic: SyntheticSet;
  gen: E.Generator;
  optimizer: GroupOptimizer;
  ctx: MethodContext;
}

/** Saved session state: tensors and JSON metadata (as a checkpoint stores them). */
export interface SessionState {
  tensors: Record<string, E.Tensor>;
  metadata: Record<string, string>;
}

export class NonFiniteLossError extends Error {
  constructor(
    readonly loss: number,
    readonly iteration: number,
    method: string,
  ) {
    super(`the ${method} loss became ${loss} at iteration ${iteration}; stopped`);
    this.name = 'NonFiniteLossError';
  }
}

/** The method's context; update() steps the group optimizer, which exists once method.init has run. */
function assemble(
  base: Omit<Session, 'ctx' | 'optimizer'>,
  state: Map<string, E.Tensor>,
  init: boolean,
): Session {
  let optimizer: GroupOptimizer | null = null;
  const ctx: MethodContext = {
    dataset: base.dataset,
    synthetic: base.synthetic,
    gen: base.gen,
    model: base.config.model,
    state,
    iteration: 0,
    update(grads, loss) {
      const fail = (e: Error): never => {
        for (const g of grads) g?.dispose();
        throw e;
      };
      if (!optimizer) return fail(new Error('update() before the session was built (in method.init)'));
      if (!Number.isFinite(loss))
        fail(new NonFiniteLossError(loss, (ctx.iteration ?? 0) + 1, base.method.name));
      if (grads.length !== optimizer.params.length)
        fail(
          new Error(
            `${base.method.name} passed ${grads.length} gradient(s) for the synthetic set's ${optimizer.params.length} learnable tensor(s) (one per synthetic.learnable, in order)`,
          ),
        );
      optimizer.step(grads);
      for (const g of grads) g?.dispose();
    },
  };
  if (init) {
    base.method.init?.(ctx, base.config.methodConfig);
    // The average starts from the images as initialised (FTD creates it before any update).
    if (base.config.imageEma !== null) base.synthetic.enableEma();
  } else if (base.config.imageEma !== null && !base.synthetic.hasEma)
    throw new Error('the checkpoint holds no moving average of the images, but the run keeps one (imageEma)');
  // Built after method.init, which may add learnable tensors (a learned lr, label logits).
  optimizer = new GroupOptimizer(
    base.synthetic,
    base.config.optimizer,
    base.config.optimizers,
    base.config.iterations,
  );
  return { ...base, ctx, optimizer };
}

/** A new session: the synthetic set initialised from `config` and the generator seeded with config.seed. */
export function newSession(dataset: Dataset, config: DistillConfig): Session {
  const method = getMethod(config.method);
  const gen = new E.Generator(config.seed);
  const synthetic = SyntheticSet.create(dataset, config.ipc, config.init as InitKind, gen, {
    parameterization: config.parameterization,
    labels: config.labels,
    labelSpace: method.labelSpace,
  });
  if (synthetic.learnedLabels && !method.labelGradients)
    throw new Error(
      `${method.name}'s objective does not depend on the labels, so they cannot be learned (labels.learn); use soft labels without learning them (labels.init teacher or uniform)`,
    );
  return assemble({ config, method, dataset, synthetic, gen }, new Map(), true);
}

/** Everything a checkpoint holds (copies). */
export function sessionState(s: Session): SessionState {
  const opt = s.optimizer.stateDict();
  const tensors: Record<string, E.Tensor> = {
    ...s.synthetic.stateTensors(),
    ...opt.tensors,
    'generator.state': s.gen.getState(),
  };
  for (const [k, t] of s.ctx.state) tensors[`method.${k}`] = t;
  return {
    tensors,
    metadata: { optimizer: JSON.stringify(opt.meta), synthetic: JSON.stringify(s.synthetic.describe()) },
  };
}

/**
 * Checkpoints written before the synthetic set saved itself (images, labels, optimizer.<slot>.<i>,
 * MTT's method.lrMomentum / method.labelMomentum) in today's keys.
 */
function upgradeLegacy(state: SessionState, config: DistillConfig, iteration: number): SessionState {
  if (Object.keys(state.tensors).some((k) => k.startsWith('set.'))) return state;
  const tensors: Record<string, E.Tensor> = {};
  const meta: GroupOptimizerState['meta'] = {};
  const old = state.metadata.optimizer
    ? (JSON.parse(state.metadata.optimizer) as Record<string, unknown>)
    : {};
  if (typeof old.kind === 'string') meta.images = old as { kind: string; lr: number; step: number };
  const moved: Record<string, string> = {
    images: 'set.param.images',
    labels: 'set.labels',
    labelLogits: 'set.labelLogits',
    lr: 'set.lr',
    'method.lrMomentum': 'optimizer.lr.momentum.0',
    'method.labelMomentum': 'optimizer.labels.momentum.0',
  };
  for (const [k, t] of Object.entries(state.tensors)) {
    if (moved[k]) tensors[moved[k]] = t;
    else if (k.startsWith('optimizer.')) tensors[`optimizer.images.${k.slice('optimizer.'.length)}`] = t;
    else tensors[k] = t;
  }
  // MTT's own SGD steps ran once per iteration.
  if (tensors['optimizer.lr.momentum.0'])
    meta.lr = { kind: 'SGD', lr: config.optimizers.lr.lr, step: iteration };
  if (tensors['optimizer.labels.momentum.0'])
    meta.labels = { kind: 'SGD', lr: config.optimizers.labels.lr, step: iteration };
  return { tensors, metadata: { ...state.metadata, optimizer: JSON.stringify(meta) } };
}

/** The session a checkpoint saved (method.init is not run again). */
export function restoreSession(
  dataset: Dataset,
  config: DistillConfig,
  saved: SessionState,
  iteration: number,
): Session {
  const state = upgradeLegacy(saved, config, iteration);
  const method = getMethod(config.method);
  const gen = new E.Generator(config.seed);
  gen.setState(state.tensors['generator.state']);
  const synthetic = SyntheticSet.restore(
    { imageShape: dataset.imageShape, classes: dataset.numClasses, ipc: config.ipc },
    config.parameterization,
    state.tensors,
  );
  const methodState = new Map<string, E.Tensor>();
  for (const [k, t] of Object.entries(state.tensors))
    if (k.startsWith('method.')) methodState.set(k.slice('method.'.length), t);
  const session = assemble({ config, method, dataset, synthetic, gen }, methodState, false);
  session.optimizer.loadStateDict({
    meta: JSON.parse(state.metadata.optimizer ?? '{}') as GroupOptimizerState['meta'],
    tensors: state.tensors,
  });
  return session;
}

export interface IterationHooks {
  /** After each iteration (1-based count); return true to stop after it. */
  after?(info: { iteration: number; loss: number; seconds: number }): boolean | void;
}

/**
 * Runs iterations [from, to) of the method (0-based; iteration i is reported as i + 1), yielding to
 * the event loop between iterations so that signals are delivered. Returns the last completed
 * iteration count and whether a hook stopped the loop early.
 */
export async function runIterations(
  s: Session,
  from: number,
  to: number,
  hooks: IterationHooks = {},
): Promise<{ iteration: number; stopped: boolean }> {
  for (let it = from; it < to; it++) {
    await new Promise((resolve) => setImmediate(resolve));
    s.ctx.iteration = it;
    const t0 = performance.now();
    const { loss } = s.method.step(s.ctx, s.config.methodConfig, it);
    s.optimizer.observe(loss);
    if (s.config.imageEma !== null) s.synthetic.updateEma(s.config.imageEma);
    const seconds = (performance.now() - t0) / 1000;
    if (hooks.after?.({ iteration: it + 1, loss, seconds }) && it + 1 < to)
      return { iteration: it + 1, stopped: true };
  }
  return { iteration: to, stopped: false };
}

/** Frees the session's optimizer state (the synthetic set stays usable). */
export function closeSession(s: Session): void {
  s.optimizer.disposeState();
}
