// One optimizer per group of the synthetic set's learnable tensors (images, decoder, labels,
// learning rate): their learning rates are orders of magnitude apart (MTT: images 1e3, lr 1e-5).
// Built after method.init (which may add a learnable lr or labels); saved in checkpoints and
// restored exactly.
import { z } from 'zod';
import * as E from '../engine/index.js';
import { GROUPS, type Group, type SyntheticSet } from './synthetic.js';

export const optimizerSpecSchema = z
  .object({
    /** 'adamw': Adam with decoupled weight decay (torch.optim.AdamW; NCFM's image optimizer). */
    kind: z.enum(['sgd', 'adam', 'adamw', 'adabelief', 'lamb']).default('sgd'),
    lr: z.number().nonnegative().default(1),
    /** SGD only. */
    momentum: z.number().min(0).max(1).default(0.5),
    /** AdamW only: decoupled weight decay, p <- p (1 - lr wd) before the step (torch's default 0.01). */
    weightDecay: z.number().nonnegative().optional(),
    /** Adam / AdamW / AdaBelief / LAMB: the denominator's eps (default: the optimizer's own, 1e-8 / 1e-3 / 1e-6). */
    eps: z.number().positive().optional(),
    /**
     * A learning-rate schedule over the group's updates: 'cosine' decays lr to alpha x lr over `steps`
     * updates (default: the run's iterations), as optax.cosine_decay_schedule (FRePo: alpha 0.1); 'step'
     * multiplies it by gamma every `every` updates.
     */
    schedule: z
      .discriminatedUnion('kind', [
        z
          .object({
            kind: z.literal('cosine'),
            alpha: z.number().min(0).max(1).default(0),
            steps: z.number().int().positive().optional(),
          })
          .strict(),
        /** x gamma every `every` updates (torch StepLR; DD: 0.5 every 40 epochs). */
        z
          .object({
            kind: z.literal('step'),
            every: z.number().int().positive(),
            gamma: z.number().positive(),
          })
          .strict(),
        /**
         * x factor once the run's loss has not improved (below best x (1 - threshold)) for more than
         * `patience` iterations (torch ReduceLROnPlateau, mode 'min', relative threshold, no cooldown;
         * NCFM: factor 0.5, patience 500 on the images).
         */
        z
          .object({
            kind: z.literal('plateau'),
            factor: z.number().positive().lt(1).default(0.1),
            patience: z.number().int().nonnegative().default(10),
            threshold: z.number().nonnegative().default(1e-4),
          })
          .strict(),
      ])
      .optional(),
    /** Adam / AdamW / AdaBelief / LAMB: (beta1, beta2); default (0.9, 0.999). DD: (0.5, 0.999). */
    betas: z.tuple([z.number().min(0).max(1), z.number().min(0).max(1)]).optional(),
  })
  .strict();
export type OptimizerSpec = z.infer<typeof optimizerSpecSchema>;

/** Settings of the groups other than images (the run's `optimizer`); defaults as the references. */
export const groupOptimizersSchema = z
  .object({
    /** Decoder weights (HaBa's hallucinators, LinBa's bases): Adam 1e-3 unless a method says otherwise. */
    decoder: optimizerSpecSchema.default({ kind: 'adam', lr: 1e-3 }),
    /** Learnable label logits: SGD 10, momentum 0.5 (the former methodConfig.lrLabels of MTT). */
    labels: optimizerSpecSchema.default({ kind: 'sgd', lr: 10, momentum: 0.5 }),
    /** A learned training lr: SGD 1e-5, momentum 0.5 (MTT's lr_lr and its optimizer). */
    lr: optimizerSpecSchema.default({ kind: 'sgd', lr: 1e-5, momentum: 0.5 }),
  })
  .strict()
  .default({});
export type GroupOptimizerSpecs = z.infer<typeof groupOptimizersSchema>;

/** A plateau schedule's state: the best loss so far (null: none yet), iterations since, lr multiplier. */
export interface PlateauState {
  best: number | null;
  bad: number;
  scale: number;
}

export interface GroupOptimizerState {
  /** Per group: kind, lr, step, and a plateau schedule's state (JSON metadata). */
  meta: Partial<Record<Group, { kind: string; lr: number; step: number; plateau?: PlateauState }>>;
  /** Buffers keyed `optimizer.<group>.<slot>.<index>`. */
  tensors: Record<string, E.Tensor>;
}

function build(spec: OptimizerSpec, params: E.Tensor[]): E.Optimizer {
  if (spec.weightDecay !== undefined && spec.kind !== 'adamw')
    throw new Error(`optimizer: weightDecay is an AdamW setting (kind 'adamw'), not ${spec.kind}'s`);
  if (spec.kind === 'sgd') return new E.SGD(params, { lr: spec.lr, momentum: spec.momentum });
  const o = { lr: spec.lr, eps: spec.eps, betas: spec.betas as [number, number] | undefined };
  if (spec.kind === 'adamw') return new E.AdamW(params, { ...o, weightDecay: spec.weightDecay });
  if (spec.kind === 'adabelief') return new E.AdaBelief(params, o);
  if (spec.kind === 'lamb') return new E.LAMB(params, o);
  return new E.Adam(params, o);
}

/**
 * The scheduled lr before update number `step` (0-based), or the spec's lr without a schedule; a plateau
 * schedule depends on the losses, not the step: `plateauScale` is its multiplier.
 */
export function scheduledLr(spec: OptimizerSpec, step: number, iterations: number, plateauScale = 1): number {
  if (!spec.schedule) return spec.lr;
  if (spec.schedule.kind === 'plateau') return spec.lr * plateauScale;
  if (spec.schedule.kind === 'step')
    return spec.lr * spec.schedule.gamma ** Math.floor(step / spec.schedule.every);
  const total = spec.schedule.steps ?? iterations;
  const cos = 0.5 * (1 + Math.cos((Math.PI * Math.min(step, total)) / total));
  return spec.lr * ((1 - spec.schedule.alpha) * cos + spec.schedule.alpha);
}

export class GroupOptimizer {
  private readonly optimizers = new Map<Group, E.Optimizer>();
  private readonly specs = new Map<Group, OptimizerSpec>();
  private readonly plateaus = new Map<Group, PlateauState>();
  /** The tensors in the order step() expects their gradients (synthetic.learnable's order). */
  readonly params: E.Tensor[];

  constructor(
    synthetic: SyntheticSet,
    images: OptimizerSpec,
    others: GroupOptimizerSpecs,
    /** The run's iterations: the default length of a schedule. */
    private readonly iterations = 1,
  ) {
    const groups = synthetic.groups;
    this.params = GROUPS.flatMap((g) => groups[g]);
    for (const g of GROUPS) {
      if (!groups[g].length) continue;
      const spec = g === 'images' ? images : others[g];
      this.specs.set(g, spec);
      this.optimizers.set(g, build(spec, groups[g]));
      if (spec.schedule?.kind === 'plateau') this.plateaus.set(g, { best: null, bad: 0, scale: 1 });
    }
  }

  /**
   * The loss of a finished iteration, for plateau schedules (called once per iteration, as NCFM steps
   * its ReduceLROnPlateau): an improvement resets the count, `patience` iterations without one halve
   * (x factor) the group's lr.
   */
  observe(loss: number): void {
    for (const [g, p] of this.plateaus) {
      const spec = this.specs.get(g) as OptimizerSpec;
      const s = spec.schedule;
      if (s?.kind !== 'plateau') continue;
      // As torch (best starts at +inf): a non-finite loss is never an improvement, nor stored (JSON has no NaN).
      if (Number.isFinite(loss) && loss < (p.best ?? Infinity) * (1 - s.threshold)) {
        p.best = loss;
        p.bad = 0;
      } else p.bad += 1;
      if (p.bad > s.patience) {
        const lr = spec.lr * p.scale;
        // torch skips a reduction smaller than its eps (1e-8).
        if (lr - lr * s.factor > 1e-8) p.scale *= s.factor;
        p.bad = 0;
      }
    }
  }

  /** One update of every group; `grads` line up with `params` (null: no update of that tensor). */
  step(grads: readonly (E.Tensor | null)[]): void {
    if (grads.length !== this.params.length)
      throw new Error(
        `GroupOptimizer: ${grads.length} gradients for ${this.params.length} learnable tensors`,
      );
    let i = 0;
    for (const [g, opt] of this.optimizers) {
      const part = grads.slice(i, i + opt.params.length);
      i += opt.params.length;
      if (!part.some((t) => t !== null)) continue;
      opt.lr = scheduledLr(
        this.specs.get(g) as OptimizerSpec,
        opt.steps,
        this.iterations,
        this.plateaus.get(g)?.scale,
      );
      opt.step(part);
    }
  }

  stateDict(): GroupOptimizerState {
    const out: GroupOptimizerState = { meta: {}, tensors: {} };
    for (const [g, opt] of this.optimizers) {
      const s = opt.stateDict();
      const plateau = this.plateaus.get(g);
      out.meta[g] = { kind: s.kind, lr: s.lr, step: s.step, ...(plateau && { plateau: { ...plateau } }) };
      for (const [k, t] of Object.entries(s.buffers)) out.tensors[`optimizer.${g}.${k}`] = t;
    }
    return out;
  }

  loadStateDict(state: GroupOptimizerState): void {
    for (const [g, opt] of this.optimizers) {
      const meta = state.meta[g];
      if (!meta)
        throw new Error(
          `the saved state has no '${g}' optimizer group (it has: ${Object.keys(state.meta).join(', ') || 'none'}); a resumed run would not continue where it stopped`,
        );
      const buffers: Record<string, E.Tensor> = {};
      const prefix = `optimizer.${g}.`;
      for (const [k, t] of Object.entries(state.tensors))
        if (k.startsWith(prefix)) buffers[k.slice(prefix.length)] = t;
      const plateau = this.plateaus.get(g);
      if (plateau && meta.plateau) Object.assign(plateau, meta.plateau);
      opt.loadStateDict({ kind: meta.kind, lr: meta.lr, step: meta.step, buffers });
    }
  }

  disposeState(): void {
    for (const opt of this.optimizers.values()) opt.disposeState();
  }
}
