// Trajectory matching: MTT (Cazenavette et al. 2022; reference
// GeorgeCazenavette/mtt-distillation distill.py) and TESLA (Cui et al. 2023; reference
// justincui03/tesla distill.py). Each iteration: an expert and a start epoch s uniform in
// [0, maxStartEpoch - 1] (np.random.randint(0, max_start_epoch)); the student starts at the
// expert's theta_s and takes synSteps SGD steps on minibatches of S with the learnable
// learning rate lr; the loss is
//   L = ||theta_T - theta_{s+E}||^2 / ||theta_s - theta_{s+E}||^2.
// Its gradient updates every learnable tensor of the set through the run's group optimizer: the
// images (and decoder), the lr (group 'lr': SGD lr_lr, momentum 0.5) and learned label logits.
//
// What each computes (all tested against fixtures from the reference code):
// - mtt, gradient 'unrolled' (default, the reference): the exact gradient through the unrolled
//   student graph; activation memory grows with synSteps.
// - mtt, gradient 'adjoint': the same exact gradient with memory constant in synSteps (only the
//   T+1 parameter vectors are kept): lambda_T = dL/dtheta_T; for t = T-1..0, g_t = grad CE(theta_t; X_t):
//     dL/dlr += -<g_t, lambda_{t+1}>,  dL/dX_t += -lr d<g_t, lambda_{t+1}>/dX_t,
//     lambda_t = lambda_{t+1} - lr H_t lambda_{t+1}          (Hessian-vector products).
// - tesla: TESLA's published gradient, which drops the Hessian terms. With G = sum_t g_t (each g_t
//   taken at the forward pass's theta_t, held fixed) and D = ||theta_s - theta_{s+E}||^2:
//     dL/dX_t = 1/D d<lr (theta_{s+E} - theta_s) + lr^2 G, g_t(theta_t, X_t)>/dX_t
//     dL/dlr  = 2/D <theta_s - lr G - theta_{s+E}, -G>          (the g_t as constants)
//   The derivative of L with the g_t's dependence on X_t alone has 2/D in the first line; the
//   reference writes `2 * torch.autograd.grad(...)`, which repeats a tuple instead of doubling it, so
//   its image gradient carries 1/D, and its published image learning rates were tuned with that.
//   We follow the code. Cheaper than exact MTT per step (no Hessian-vector product), constant
//   activation memory.
// Labels: hard (default), TESLA's teacher labels ('teacher': the sampled target parameters' class
// probabilities on the current images, recomputed every iteration; the reference's --teacher_label),
// or soft labels fixed at init from an expert's final epoch ('fixed'); with the run's labels.learn
// they are learned as logits (softmax, as DATM does) in the optimizer's 'labels' group.
import { z } from 'zod';
import * as E from '../../engine/index.js';
import { DSA, type SegmentParams, methodDsa } from '../../augment/index.js';
import { createNetwork, unflattenParams, type Network, type ParamLayout } from '../../models/index.js';
import { ExpertSet, openExperts } from '../experts.js';
import type { Collective, Method, MethodContext, StepResult } from '../method.js';
import { reduceGradients, refuseBatchNorm, sharedWorld } from '../dataparallel.js';
import { registerMethod } from '../registry.js';

export const TRAJECTORY_GRADIENTS = ['unrolled', 'adjoint', 'tesla'] as const;
export type TrajectoryGradient = (typeof TRAJECTORY_GRADIENTS)[number];

/** The trajectory methods' settings (HaBa extends them). */
export function trajectorySchema(method: 'mtt' | 'tesla' | 'ftd' | 'datm') {
  // mtt: 'unrolled' (backpropagation through the student graph) or 'adjoint' (the same gradient in
  // constant memory); tesla: TESLA's own gradient.
  const gradients = (method === 'tesla' ? ['tesla'] : ['unrolled', 'adjoint']) as [
    TrajectoryGradient,
    ...TrajectoryGradient[],
  ];
  return z
    .object({
      experts: z
        .string({ required_error: 'set methodConfig.experts to a directory made by `distillery experts`' })
        .describe('Directory of expert trajectories (`distillery experts`).'),
      gradient: z
        .enum(gradients)
        .default(gradients[0])
        .describe('How the gradient is computed (see the top of this file).'),
      synSteps: z.number().int().positive().default(20).describe('Student SGD steps per iteration.'),
      expertEpochs: z
        .number()
        .int()
        .positive()
        .default(3)
        .describe('Expert epochs the student must cover (target = start + expertEpochs).'),
      maxStartEpoch: z
        .number()
        .int()
        .positive()
        .default(25)
        .describe(
          'Start epochs are drawn from [0, maxStartEpoch - 1], as np.random.randint(0, max_start_epoch).',
        ),
      minStartEpoch: z
        .number()
        .int()
        .nonnegative()
        .default(0)
        .describe("Lowest start epoch (DATM's min_start_epoch; the references before it: 0)."),
      startWindow: z
        .object({
          from: z.number().int().positive(),
          iterations: z.number().int().positive(),
        })
        .strict()
        .nullable()
        .default(null)
        .describe(
          "DATM's sequential generation: the start epochs' exclusive upper bound grows from `from` to maxStartEpoch over `iterations` iterations, from + floor((max - from) it / iterations); null: always maxStartEpoch.",
        ),
      lossThreshold: z
        .number()
        .positive()
        .nullable()
        .default(null)
        .describe(
          'DATM: an iteration whose matching loss exceeds this updates nothing (images, lr, labels); null: always update.',
        ),
      batchSyn: z
        .number()
        .int()
        .positive()
        .optional()
        .describe('Synthetic images per student step; default: all of them.'),
      lrTeacher: z
        .number()
        .positive()
        .default(0.01)
        .describe("Initial learnable learning rate of the student (its optimizer: the run's optimizers.lr)."),
      dsa: z
        .boolean()
        .default(true)
        .describe("DSA on the student's batches (one group per batch, per-image parameters)."),
      dsaStrategy: z
        .string()
        .optional()
        .describe("DSA strategy; default: the dataset's (no flips for digits)."),
      // Runs recorded before the three modes had a boolean: true was today's 'fixed'.
      softLabels: z
        .preprocess(
          (v) => (v === true ? 'fixed' : v === false ? 'off' : v),
          z.enum(['off', 'teacher', 'fixed']).default('off'),
        )
        .describe(
          "'off': hard labels (the references' default). 'teacher': TESLA's teacher labels, recomputed every iteration from the sampled target parameters on the current images. 'fixed': soft labels computed once at init from a random expert's final epoch.",
        ),
      expertSampling: z
        .enum(['walk', 'uniform'])
        .default('walk')
        .describe(
          "'walk' (the references' default, load_all off): experts in a shuffled order without replacement, reshuffled when all were used. 'uniform' (their --load_all): one drawn with replacement each iteration.",
        ),
    })
    .strict();
}

/**
 * Runs recorded before the group optimizers kept MTT's own optimizer settings in methodConfig:
 * lrLr (SGD, momentum 0.5) is now optimizers.lr, lrLabels optimizers.labels, learnLabels labels.learn.
 */
function migrate(raw: Record<string, unknown>): Record<string, unknown> {
  const mc = raw.methodConfig as Record<string, unknown> | undefined;
  if (!mc || !['lrLr', 'lrLabels', 'learnLabels'].some((k) => k in mc)) return raw;
  const { lrLr, lrLabels, learnLabels, ...rest } = mc;
  const optimizers = { ...((raw.optimizers as Record<string, unknown>) ?? {}) };
  if (lrLr !== undefined) optimizers.lr = { kind: 'sgd', lr: lrLr, momentum: 0.5 };
  if (lrLabels !== undefined) optimizers.labels = { kind: 'sgd', lr: lrLabels, momentum: 0.5 };
  const labels = { ...((raw.labels as Record<string, unknown>) ?? {}) };
  if (learnLabels) labels.learn = true;
  return { ...raw, methodConfig: rest, optimizers, labels };
}

export type TrajectoryConfig = z.infer<ReturnType<typeof trajectorySchema>>;

/** One student step's randomness, recorded so a gradient can recompute the step exactly. */
export interface StudentStep {
  indices: E.Tensor;
  draws: SegmentParams[] | null;
}

/** Everything one trajectory-matching gradient depends on. */
export interface TrajectoryProblem {
  net: Network;
  layout: ParamLayout;
  start: E.Tensor;
  target: E.Tensor;
  /** The synthetic images (decoded; differentiable with respect to what `wrt` lists). */
  images: E.Tensor;
  /** Class indices, or soft targets [M, classes] (differentiable when learned). */
  labels: E.Tensor;
  lr: E.Tensor;
  steps: StudentStep[];
  dsa: DSA | null;
  /**
   * Data parallel (several ranks): each rank computes its part of every student minibatch (a contiguous
   * slice, as DataParallel splits it), the step gradients and Hessian-vector products are summed over
   * the ranks, so every rank follows the same student trajectory; the images' gradients stay per rank
   * (the caller sums them). Only the adjoint gradient supports it.
   */
  world?: Collective | null;
}

export interface TrajectoryGradients {
  loss: number;
  /** One per tensor of `wrt`, in order. */
  grads: E.Tensor[];
}

/** This rank's contiguous slice of a minibatch of n images: [start, end). */
export function rankSlice(n: number, world: Collective): { start: number; end: number } {
  return {
    start: Math.floor((world.rank * n) / world.worldSize),
    end: Math.floor(((world.rank + 1) * n) / world.worldSize),
  };
}

/**
 * The student's cross-entropy on one step's minibatch; with a world, on this rank's slice, scaled by
 * its share of the batch so that the sum over the ranks is the minibatch mean.
 */
function studentLoss(p: TrajectoryProblem, theta: E.Tensor, step: StudentStep): E.Tensor {
  let indices = step.indices;
  let draws = step.draws;
  const n = step.indices.size(0);
  const part = p.world ? rankSlice(n, p.world) : { start: 0, end: n };
  if (p.world) {
    indices = indices.narrow(0, part.start, part.end - part.start);
    draws = draws && draws.slice(part.start, part.end);
  }
  let x = p.images.indexSelect(0, indices);
  if (p.dsa && draws) x = p.dsa.apply(x, draws, new Array<number>(draws.length).fill(1));
  const logits = p.net.forward(unflattenParams(theta, p.layout), x, { train: true });
  const loss = E.nn.crossEntropy(logits, p.labels.indexSelect(0, indices));
  return p.world ? loss.mul((part.end - part.start) / n) : loss;
}

/**
 * Data parallel needs every rank to hold part of every minibatch and no batch statistics (they would
 * be per slice, as in DataParallel, not the one process's); every rank draws the same steps, so all of
 * them refuse together.
 */
function checkShardable(p: TrajectoryProblem, world: Collective): void {
  refuseBatchNorm(p.net, world, "be per rank's slice of a minibatch");
  const smallest = Math.min(...p.steps.map((s) => s.indices.size(0)));
  if (smallest < world.worldSize)
    throw new Error(
      `a student minibatch of ${smallest} images cannot be split over ${world.worldSize} ranks; raise methodConfig.batchSyn (and make the set a multiple of it) or use fewer ranks`,
    );
}

/** Sums a step's gradient (or Hessian-vector product) over the ranks, in place. */
function sumOverRanks(p: TrajectoryProblem, t: E.Tensor): E.Tensor {
  if (p.world) p.world.allReduce([t]);
  return t;
}

function distanceScale(p: TrajectoryProblem): E.Tensor {
  return E.noGrad(() => p.start.sub(p.target).square().sum());
}

function matchingLoss(final: E.Tensor, p: TrajectoryProblem): E.Tensor {
  return final.sub(p.target).square().sum().div(distanceScale(p));
}

/** MTT's loss with the whole unrolled student graph (differentiable in images, labels and lr). */
export function unrolledLoss(p: TrajectoryProblem): E.Tensor {
  let theta = p.start.detach().requiresGrad_();
  for (const step of p.steps) {
    const [g] = E.grad(studentLoss(p, theta, step), [theta], { createGraph: true });
    theta = theta.sub(g.mul(p.lr));
  }
  return matchingLoss(theta, p);
}

/** MTT (gradient 'unrolled'): the loss and its gradients with respect to `wrt`, through the unrolled graph. */
export function unrolledGradients(p: TrajectoryProblem, wrt: E.Tensor[]): TrajectoryGradients {
  return E.tidy(() => {
    const loss = unrolledLoss(p);
    const grads = E.grad(loss, wrt, { allowUnused: true }).map((g, i) => g ?? E.zerosLike(wrt[i]));
    return { loss: loss.item(), grads };
  });
}

/**
 * The student's forward pass without graphs: the parameter vectors theta_0..theta_T (at the
 * learning rate's current value) and the sum of the step gradients.
 */
function studentForward(p: TrajectoryProblem): { thetas: E.Tensor[]; gradSum: E.Tensor } {
  const thetas: E.Tensor[] = [p.start.detach()];
  const lr = p.lr.detach();
  let gradSum = E.zerosLike(p.start);
  const constants = { ...p, images: p.images.detach(), labels: p.labels.detach() };
  for (const step of p.steps) {
    const theta = thetas[thetas.length - 1];
    const { next, sum } = E.tidy(() => {
      const leaf = theta.detach().requiresGrad_();
      const g = sumOverRanks(p, E.grad(studentLoss(constants, leaf, step), [leaf])[0].contiguous());
      return { next: theta.sub(g.mul(lr)), sum: gradSum.add(g) };
    });
    gradSum.dispose();
    gradSum = sum;
    thetas.push(next);
  }
  return { thetas, gradSum };
}

/** Splits `wrt` into the learning rate (index or -1) and the others (images, labels, decoder tensors). */
function splitLr(p: TrajectoryProblem, wrt: E.Tensor[]): { lrIndex: number; others: E.Tensor[] } {
  const lrIndex = wrt.indexOf(p.lr);
  return { lrIndex, others: wrt.filter((_, i) => i !== lrIndex) };
}

/**
 * Per-tensor gradients of `value` (null where unused), keeping the graph: the decoded images of every
 * student step share the decoder's graph, which later steps differentiate again.
 */
function gradientsOf(value: E.Tensor, wrt: E.Tensor[]): (E.Tensor | null)[] {
  return wrt.length ? E.grad(value, wrt, { allowUnused: true, retainGraph: true }) : [];
}

/** Adds `parts` (per `wrt` entry; null = nothing) into `sums`, disposing what it replaces. */
function accumulate(sums: E.Tensor[], parts: (E.Tensor | null)[]): E.Tensor[] {
  return sums.map((acc, i) => {
    const part = parts[i];
    if (!part) return acc;
    const next = acc.add(part);
    acc.dispose();
    part.dispose();
    return next;
  });
}

/** MTT (gradient 'adjoint'): the exact gradient with one step's graph alive at a time. */
export function adjointGradients(p: TrajectoryProblem, wrt: E.Tensor[]): TrajectoryGradients {
  return E.tidy(() => {
    const { thetas } = studentForward(p);
    const lr = p.lr.detach();
    const final = thetas[thetas.length - 1].detach().requiresGrad_();
    const loss = matchingLoss(final, p);
    let lambda = E.grad(loss, [final])[0];
    const { lrIndex, others } = splitLr(p, wrt);
    let sums = wrt.map((t) => E.zerosLike(t));
    for (let t = p.steps.length - 1; t >= 0; t--) {
      const lam = lambda;
      // Step t transposed against lambda_{t+1}: theta_{t+1} = theta_t - lr g_t(theta_t, X_t).
      const { next, parts } = E.tidy(() => {
        const leaf = thetas[t].detach().requiresGrad_();
        const [g] = E.grad(studentLoss(p, leaf, p.steps[t]), [leaf], { createGraph: true });
        const inner = g.mul(lam).sum();
        // One backward pass for the Hessian-vector product and the images' (and labels') terms.
        const [hvp, ...rest] = gradientsOf(inner, [leaf, ...others]);
        let k = 0;
        const parts = wrt.map((_, i) => {
          if (i === lrIndex) return inner.detach().neg();
          const r = rest[k++];
          return r ? r.mul(lr).neg() : null;
        });
        // The step's Hessian is the sum of every rank's slice: sum the products before using them (every
        // rank joins the sum, zeros where its slice did not depend on theta).
        const h = p.world ? sumOverRanks(p, (hvp ?? E.zerosLike(lam)).contiguous()) : hvp;
        return { next: h ? lam.sub(h.mul(lr)) : lam.clone(), parts };
      });
      sums = accumulate(sums, parts);
      lam.dispose();
      thetas[t + 1].dispose();
      lambda = next;
    }
    return { loss: loss.item(), grads: sums };
  });
}

/** TESLA: the published gradient (no Hessian terms; see the top of this file). */
export function teslaGradients(p: TrajectoryProblem, wrt: E.Tensor[]): TrajectoryGradients {
  return E.tidy(() => {
    const { thetas, gradSum } = studentForward(p);
    const lr = p.lr.detach().item();
    const scale = distanceScale(p);
    // The constant each step's gradient is paired with: 1/D (lr (target - start) + lr^2 G), as the reference.
    const pair = E.noGrad(() =>
      p.target
        .sub(p.start)
        .mul(lr)
        .add(gradSum.mul(lr * lr))
        .div(scale),
    );
    const { lrIndex, others } = splitLr(p, wrt);
    let sums = wrt.map((t) => E.zerosLike(t));
    p.steps.forEach((step, t) => {
      const parts = E.tidy(() => {
        const leaf = thetas[t].detach().requiresGrad_();
        const [g] = E.grad(studentLoss(p, leaf, step), [leaf], { createGraph: true });
        const rest = gradientsOf(g.mul(pair).sum(), others);
        let k = 0;
        return wrt.map((_, i) => (i === lrIndex ? null : rest[k++]));
      });
      sums = accumulate(sums, parts);
    });
    // The loss and the lr gradient treat the step gradients as constants: ||start - lr G - target||^2 / D.
    const lrLeaf = p.lr.detach().requiresGrad_();
    const residual = p.start.sub(gradSum.mul(lrLeaf)).sub(p.target);
    const loss = residual.square().sum().div(scale);
    if (lrIndex >= 0)
      sums = accumulate(
        sums,
        wrt.map((_, i) => (i === lrIndex ? E.grad(loss, [lrLeaf])[0] : null)),
      );
    return { loss: loss.item(), grads: sums };
  });
}

export const GRADIENTS: Record<
  TrajectoryGradient,
  (p: TrajectoryProblem, wrt: E.Tensor[]) => TrajectoryGradients
> = {
  unrolled: unrolledGradients,
  adjoint: adjointGradients,
  tesla: teslaGradients,
};

interface IterationSample {
  expert: number;
  startEpoch: number;
}

function checkEpochs(set: ExpertSet, config: TrajectoryConfig): void {
  if (config.minStartEpoch >= (config.startWindow?.from ?? config.maxStartEpoch))
    throw new Error(
      `minStartEpoch (${config.minStartEpoch}) must be below the start epochs' upper bound (${config.startWindow ? `startWindow.from ${config.startWindow.from}` : `maxStartEpoch ${config.maxStartEpoch}`})`,
    );
  if (config.startWindow && config.startWindow.from > config.maxStartEpoch)
    throw new Error(
      `startWindow.from (${config.startWindow.from}) must not exceed maxStartEpoch (${config.maxStartEpoch})`,
    );
  if (config.maxStartEpoch - 1 + config.expertEpochs > set.epochs) {
    throw new Error(
      `maxStartEpoch (${config.maxStartEpoch}, starts up to ${config.maxStartEpoch - 1}) + expertEpochs (${config.expertEpochs}) needs experts of at least ${config.maxStartEpoch - 1 + config.expertEpochs} epochs; those in ${set.dir} have ${set.epochs}`,
    );
  }
}

function sampleIteration(
  set: ExpertSet,
  config: TrajectoryConfig,
  gen: E.Generator,
  state: Map<string, E.Tensor>,
  iteration: number,
): IterationSample {
  return E.tidy(() => {
    const expert = set.complete[nextExpertIndex(set.complete.length, config, gen, state)];
    const high = startEpochBound(config, iteration);
    const startEpoch = E.randint(config.minStartEpoch, high, [1], { generator: gen }).item();
    return { expert, startEpoch };
  });
}

/**
 * The exclusive upper bound of the start epoch at a 0-based iteration: maxStartEpoch, or with DATM's
 * startWindow min(max, from + floor((max - from) iteration / iterations)) (DATM.py:484-491).
 *
 * @example startEpochBound({ maxStartEpoch: 20, startWindow: { from: 10, iterations: 1000 } }, 150) // 11
 */
export function startEpochBound(
  config: Pick<TrajectoryConfig, 'maxStartEpoch' | 'startWindow'>,
  iteration: number,
): number {
  const w = config.startWindow;
  if (!w) return config.maxStartEpoch;
  const max = config.maxStartEpoch;
  return Math.min(max, w.from + Math.floor(((max - w.from) * iteration) / w.iterations));
}

/**
 * Index into the complete experts. 'walk' keeps its order and position in the method state (saved
 * with checkpoints, so a resumed run continues the same walk); the reference walks files of 10
 * experts in shuffled order, then the experts of each file shuffled: for up to 10 experts (one file)
 * that is this walk exactly, beyond it each pass still uses every expert once.
 */
export function nextExpertIndex(
  n: number,
  config: TrajectoryConfig,
  gen: E.Generator,
  state: Map<string, E.Tensor>,
): number {
  if (config.expertSampling === 'uniform') return E.randint(0, n, [1], { generator: gen }).item();
  let order = state.get('expertOrder');
  let next = state.get('expertNext')?.item() ?? 0;
  if (!order || order.size(0) !== n || next >= n) {
    // A new pass (or the set of complete experts changed under a resumed run).
    order?.dispose();
    order = E.randperm(n, { generator: gen }).keep();
    state.set('expertOrder', order);
    next = 0;
  }
  state.get('expertNext')?.dispose();
  state.set('expertNext', E.tensor(next + 1, { shape: [], dtype: 'float64' }).keep());
  return order.toNumbers()[next];
}

/** Minibatches as the reference draws them: a fresh permutation split into chunks, consumed from the end. */
function sampleSteps(m: number, config: TrajectoryConfig, dsa: DSA | null, gen: E.Generator): StudentStep[] {
  const batch = Math.min(config.batchSyn ?? m, m);
  const steps: StudentStep[] = [];
  const chunks: E.Tensor[] = [];
  for (let s = 0; s < config.synSteps; s++) {
    if (chunks.length === 0) {
      const perm = E.randperm(m, { generator: gen });
      for (let start = 0; start < m; start += batch)
        chunks.push(perm.narrow(0, start, Math.min(batch, m - start)));
    }
    const indices = chunks.pop() as E.Tensor;
    const n = indices.size(0);
    steps.push({ indices, draws: dsa ? dsa.sample(n, gen, { sharedGroup: true }) : null });
  }
  return steps;
}

/** Logits of the flat parameters `params` on the images, the network in eval mode (no graph). */
function expertOutputs(net: Network, params: E.Tensor, layout: ParamLayout, images: E.Tensor): E.Tensor {
  return E.noGrad(() => net.forward(unflattenParams(params, layout), images.detach(), { train: false }));
}

/** TESLA's teacher labels: the class probabilities of the target parameters on the images. */
export function teacherLabels(
  net: Network,
  target: E.Tensor,
  layout: ParamLayout,
  images: E.Tensor,
): E.Tensor {
  return E.tidy(() => E.nn.softmax(expertOutputs(net, target, layout, images), 1));
}

export function trajectoryMatching(o: {
  name: 'mtt' | 'tesla' | 'ftd' | 'datm';
  summary: string;
  /**
   * Replaces the soft-label initialisation (DATM: images the experts classify correctly, labels their
   * mean logits); runs after the lr is set, with the opened experts.
   */
  initLabels?: (ctx: MethodContext, config: TrajectoryConfig, experts: ExpertSet) => void;
  /** FTD: the experts must have been trained with GSAM (flat trajectories). */
  flatExperts?: boolean;
  /** Run settings beyond MTT's (FTD: the images' moving average). */
  defaults?: Record<string, unknown>;
}): Method<TrajectoryConfig> {
  return {
    name: o.name,
    family: 'parameter matching',
    subFamily: 'multi step: trajectory matching',
    summary: o.summary,
    usesExperts: true,
    // With the adjoint gradient (step() refuses the others for several ranks).
    dataParallel: true,
    needs: o.flatExperts
      ? 'expert trajectories trained with GSAM (`distillery experts --optimizer gsam`, then methodConfig.experts=<dir>)'
      : 'expert trajectories (`distillery experts`, then methodConfig.experts=<dir>)',
    schema: trajectorySchema(o.name) as z.ZodType<TrajectoryConfig>,
    defaults: {
      init: 'real',
      iterations: 5000,
      optimizer: { kind: 'sgd', lr: 1000, momentum: 0.5 },
      ...o.defaults,
    },
    labelGradients: true,
    migrate,

    init(ctx: MethodContext, config: TrajectoryConfig): void {
      const { dataset, synthetic, gen, model } = ctx;
      const set = openExperts(config.experts, dataset, model);
      checkEpochs(set, config);
      if (o.flatExperts && !set.manifest.training.gsam)
        throw new Error(
          `${o.name} matches flat trajectories, but the experts in ${set.dir} were trained with plain SGD; train them with \`distillery experts --optimizer gsam\` (--method mtt runs on these; add --set imageEma=0.999 for FTD's moving average)`,
        );
      synthetic.setLr(E.tensor(config.lrTeacher, { shape: [] }).requiresGrad_());
      const learned = synthetic.labelForm === 'logits';
      if (learned && config.softLabels === 'teacher')
        throw new Error(
          `${o.name}: softLabels 'teacher' recomputes the labels every iteration, so they cannot be learned (labels.learn); use softLabels 'fixed' to learn them`,
        );
      if (o.initLabels) o.initLabels(ctx, config, set);
      else if (config.softLabels === 'fixed') {
        // A random expert's outputs at the end of its training; learned as logits, or kept as probabilities.
        const logits = E.tidy(() => {
          const expert = set.complete[E.randint(0, set.complete.length, [1], { generator: gen }).item()];
          const net = createNetwork(model, dataset.imageShape, dataset.numClasses);
          return expertOutputs(
            net,
            set.load(expert, set.epochs),
            set.manifest.layout,
            synthetic.decode().images,
          );
        });
        if (learned) synthetic.setLabels(logits.keep(), 'logits');
        else {
          synthetic.setLabels(E.tidy(() => E.nn.softmax(logits, 1)).keep(), 'soft');
          logits.dispose();
        }
      }
    },

    step(ctx: MethodContext, config: TrajectoryConfig): StepResult {
      if (!ctx.synthetic.lr)
        throw new Error(`${o.name}: the synthetic set has no learnable learning rate (init was not run)`);
      const world = sharedWorld(ctx.world);
      if (world && config.gradient !== 'adjoint')
        throw new Error(
          `${o.name} runs data-parallel with methodConfig.gradient=adjoint (the same gradient, the student's minibatches split over the ranks); '${config.gradient}' would need a differentiable all-reduce`,
        );
      return E.tidy(() => {
        const problem = { ...iterationProblem(ctx, config), world };
        if (world) checkShardable(problem, world);
        // Every learnable tensor of the set (images, decoder, label logits, lr), one optimizer group each.
        const local = GRADIENTS[config.gradient](problem, ctx.synthetic.learnable);
        // Several ranks: each holds its slices' share of the gradients; every rank computed the same loss.
        const { loss, grads } = reduceGradients(
          world,
          local.grads,
          ctx.synthetic.learnable,
          local.loss / (world?.worldSize ?? 1),
        );
        // DATM skips every update of an iteration whose loss is above the threshold (finite losses only:
        // a NaN still reaches update(), which stops the run).
        if (config.lossThreshold !== null && loss > config.lossThreshold) grads.forEach((g) => g?.dispose());
        else ctx.update(grads, loss);
        return { loss };
      });
    },
  };
}

/**
 * One iteration's problem, drawn from ctx.gen as step() draws it: an expert and start epoch, the
 * teacher labels when configured (set on the synthetic set), the minibatches and their DSA draws.
 */
export function iterationProblem(
  ctx: MethodContext,
  config: TrajectoryConfig,
  sample: (m: number, dsa: DSA | null, gen: E.Generator) => StudentStep[] = (m, dsa, gen) =>
    sampleSteps(m, config, dsa, gen),
): TrajectoryProblem {
  const { dataset, synthetic, gen, model } = ctx;
  const set = openExperts(config.experts, dataset, model);
  checkEpochs(set, config);
  if (!synthetic.lr) throw new Error('the synthetic set has no learnable learning rate (init was not run)');
  const net = createNetwork(model, dataset.imageShape, dataset.numClasses);
  const dsa = methodDsa(config, dataset.name);
  const { expert, startEpoch } = sampleIteration(set, config, gen, ctx.state, ctx.iteration ?? 0);
  const target = set.load(expert, startEpoch + config.expertEpochs);
  const layout = set.manifest.layout;
  if (config.softLabels === 'teacher') {
    // TESLA's --teacher_label: the target parameters' probabilities on the current images.
    synthetic.setLabels(teacherLabels(net, target, layout, synthetic.decode().images).keep(), 'soft');
  }
  const { images, labels } = synthetic.decode();
  return {
    net,
    layout,
    start: set.load(expert, startEpoch),
    target,
    images,
    labels,
    lr: synthetic.lr,
    steps: sample(images.size(0), dsa, gen),
    dsa,
  };
}

export const mtt = registerMethod(
  trajectoryMatching({
    name: 'mtt',
    summary:
      'match expert training trajectories with unrolled student updates; gradient unrolled or adjoint (Cazenavette et al. 2022)',
  }),
);

export const tesla = registerMethod(
  trajectoryMatching({
    name: 'tesla',
    summary: "trajectory matching with TESLA's Hessian-free gradient in constant memory (Cui et al. 2023)",
  }),
);

export const ftd = registerMethod(
  trajectoryMatching({
    name: 'ftd',
    summary:
      'MTT on flat expert trajectories (trained with GSAM) with a moving average of the images (Du et al. 2023)',
    flatExperts: true,
    // distill_FTD.py's default decay (its scripts use 0.9995; Table 7 per setting: the presets).
    defaults: { imageEma: 0.999 },
  }),
);
