// Trajectory matching: MTT (Cazenavette et al. 2022; reference
// GeorgeCazenavette/mtt-distillation distill.py) and TESLA (Cui et al. 2023).
// Each iteration: an expert and a start epoch s; the student starts at the
// expert's theta_s and takes synSteps SGD steps on minibatches of S with the
// learnable learning rate; the loss is
//   L = ||theta_student - theta_{s+E}||^2 / ||theta_s - theta_{s+E}||^2
// and its gradient updates the images (the run's optimizer) and the learning
// rate (SGD lrLr, momentum 0.5, state in ctx.state).
//
// MTT differentiates the unrolled graph (memory grows with synSteps). TESLA
// computes the same gradient with memory constant in synSteps: it keeps only the
// parameter vectors of the forward pass and runs the adjoint backwards,
// recomputing one step's graph at a time:
//   lambda_T = dL/dtheta_T;  for t = T-1..0, with g_t = grad CE(theta_t; X_t):
//   dL/dlr += -<g_t, lambda_{t+1}>,  dL/dX_t += -lr d<g_t, lambda_{t+1}>/dX_t,
//   lambda_t = lambda_{t+1} - lr H_t lambda_{t+1}
// TESLA also starts from soft labels: an expert's predicted class probabilities.
import { z } from 'zod';
import * as E from '../../engine/index.js';
import { DSA, defaultStrategy, type SegmentParams } from '../../augment/index.js';
import type { Dataset } from '../../data/dataset.js';
import { createNetwork, unflattenParams, type Network, type ParamLayout } from '../../models/index.js';
import { ExpertSet } from '../experts.js';
import type { Method, MethodContext, StepResult } from '../method.js';

function makeSchema(teslaDefaults: boolean) {
  return z
    .object({
      /** Directory of expert trajectories (`distillery experts`). */
      experts: z.string({
        required_error: 'set methodConfig.experts to a directory made by `distillery experts`',
      }),
      /** Student SGD steps per iteration. */
      synSteps: z.number().int().positive().default(20),
      /** Expert epochs the student must cover (target = start + expertEpochs). */
      expertEpochs: z.number().int().positive().default(2),
      /** Largest start epoch (inclusive); at most the trajectories' epochs - expertEpochs. */
      maxStartEpoch: z.number().int().nonnegative().default(20),
      /** Synthetic images per student step; default: all of them. */
      batchSyn: z.number().int().positive().optional(),
      /** Initial learnable learning rate of the student. */
      lrTeacher: z.number().positive().default(0.01),
      /** SGD (momentum 0.5) learning rate of that learning rate. */
      lrLr: z.number().positive().default(1e-5),
      /** DSA on the student's batches (one group per batch, per-image parameters). */
      dsa: z.boolean().default(true),
      dsaStrategy: z.string().optional(),
      /** Start from soft labels: an expert's predicted probabilities (TESLA). */
      softLabels: z.boolean().default(teslaDefaults),
      /** Learn the soft labels too (needs softLabels), by their own SGD (lrLabels, momentum 0.5). */
      learnLabels: z.boolean().default(false),
      lrLabels: z.number().positive().default(10),
    })
    .strict()
    .refine((c) => !c.learnLabels || c.softLabels, {
      message: 'learnLabels needs softLabels: true (hard class labels cannot be learned)',
      path: ['learnLabels'],
    });
}

export type TrajectoryConfig = z.infer<ReturnType<typeof makeSchema>>;

/** One student step's randomness, recorded so TESLA can recompute the step exactly. */
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
}

function studentLoss(p: TrajectoryProblem, theta: E.Tensor, step: StudentStep): E.Tensor {
  let x = p.images.indexSelect(0, step.indices);
  if (p.dsa && step.draws) x = p.dsa.apply(x, step.draws, new Array<number>(step.draws.length).fill(1));
  const logits = p.net.forward(unflattenParams(theta, p.layout), x, { train: true });
  return E.nn.crossEntropy(logits, p.labels.indexSelect(0, step.indices));
}

function matchingLoss(final: E.Tensor, p: TrajectoryProblem): E.Tensor {
  const denom = E.noGrad(() => p.start.sub(p.target).square().sum());
  return final.sub(p.target).square().sum().div(denom);
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

/** MTT: the loss and its gradients with respect to `wrt`, through the unrolled graph. */
export function unrolledGradients(
  p: TrajectoryProblem,
  wrt: E.Tensor[],
): { loss: number; grads: E.Tensor[] } {
  return E.tidy(() => {
    const loss = unrolledLoss(p);
    const grads = E.grad(loss, wrt, { allowUnused: true }).map((g, i) => g ?? E.zerosLike(wrt[i]));
    return { loss: loss.item(), grads };
  });
}

/** TESLA: the same gradients with one step's graph alive at a time (adjoint, recomputing each step). */
export function constantMemoryGradients(
  p: TrajectoryProblem,
  wrt: E.Tensor[],
): { loss: number; grads: E.Tensor[] } {
  return E.tidy(() => {
    // Forward without graphs: keep the parameter vectors only.
    const thetas: E.Tensor[] = [p.start.detach()];
    const lr = p.lr.detach();
    for (const step of p.steps) {
      const theta = thetas[thetas.length - 1];
      const next = E.tidy(() => {
        const leaf = theta.detach().requiresGrad_();
        const constants = { ...p, images: p.images.detach(), labels: p.labels.detach() };
        const [g] = E.grad(studentLoss(constants, leaf, step), [leaf]);
        return theta.sub(g.mul(lr));
      });
      thetas.push(next);
    }
    const final = thetas[thetas.length - 1].detach().requiresGrad_();
    const loss = matchingLoss(final, p);
    let lambda = E.grad(loss, [final])[0];
    const lrIndex = wrt.indexOf(p.lr);
    const others = wrt.filter((_, i) => i !== lrIndex);
    let sums = wrt.map((t) => E.zerosLike(t));
    for (let t = p.steps.length - 1; t >= 0; t--) {
      const lam = lambda;
      // Step t transposed against lambda_{t+1}: theta_{t+1} = theta_t - lr g_t(theta_t, X_t).
      const { next, contributions } = E.tidy(() => {
        const leaf = thetas[t].detach().requiresGrad_();
        const [g] = E.grad(studentLoss(p, leaf, p.steps[t]), [leaf], { createGraph: true });
        const inner = g.mul(lam).sum();
        const [hvp, ...rest] = E.grad(inner, [leaf, ...others], { allowUnused: true });
        let k = 0;
        const contributions = wrt.map((w, i) => {
          if (i === lrIndex) return inner.detach().neg();
          const r = rest[k++];
          return r ? r.mul(lr).neg() : E.zerosLike(w);
        });
        return { next: hvp ? lam.sub(hvp.mul(lr)) : lam.clone(), contributions };
      });
      const updated = sums.map((acc, i) => acc.add(contributions[i]));
      for (const old of [...sums, ...contributions, lam, thetas[t + 1]]) old.dispose();
      sums = updated;
      lambda = next;
    }
    return { loss: loss.item(), grads: sums };
  });
}

/** SGD with momentum 0.5 in PyTorch's form (the first buffer is the gradient), its buffer in ctx.state. */
function sgdWithMomentum(
  state: Map<string, E.Tensor>,
  key: string,
  param: E.Tensor,
  grad: E.Tensor,
  lr: number,
): void {
  E.noGrad(() => {
    const previous = state.get(key);
    const buffer = previous ? previous.mul(0.5).add(grad) : grad.clone();
    previous?.dispose();
    state.set(key, buffer.keep());
    param.sub_(buffer.mul(lr));
  });
}

interface IterationSample {
  expert: number;
  startEpoch: number;
}

const expertSets = new Map<string, ExpertSet>();

/** The experts for this dataset and model (validated once per process). */
function openExperts(dir: string, dataset: Dataset, model: string): ExpertSet {
  const key = `${dir}\0${dataset.info.checksum}\0${model}`;
  let set = expertSets.get(key);
  if (!set) {
    set = new ExpertSet(dir, dataset, model);
    expertSets.set(key, set);
  }
  return set;
}

function checkEpochs(set: ExpertSet, config: TrajectoryConfig): void {
  if (config.maxStartEpoch + config.expertEpochs > set.epochs) {
    throw new Error(
      `maxStartEpoch (${config.maxStartEpoch}) + expertEpochs (${config.expertEpochs}) exceeds the ${set.epochs} epochs of the experts in ${set.dir}`,
    );
  }
}

function sampleIteration(set: ExpertSet, config: TrajectoryConfig, gen: E.Generator): IterationSample {
  return E.tidy(() => {
    const expert = set.complete[E.randint(0, set.complete.length, [1], { generator: gen }).item()];
    const startEpoch = E.randint(0, config.maxStartEpoch + 1, [1], { generator: gen }).item();
    return { expert, startEpoch };
  });
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

function trajectoryMatching(o: {
  name: string;
  constantMemory: boolean;
  summary: string;
}): Method<TrajectoryConfig> {
  return {
    name: o.name,
    family: 'parameter matching',
    subFamily: 'multi step: trajectory matching',
    summary: o.summary,
    needs: 'expert trajectories (`distillery experts`, then methodConfig.experts=<dir>)',
    schema: makeSchema(o.constantMemory) as z.ZodType<TrajectoryConfig>,
    defaults: { init: 'real', iterations: 5000, optimizer: { kind: 'sgd', lr: 1000, momentum: 0.5 } },

    init({ dataset, synthetic, gen, model }: MethodContext, config: TrajectoryConfig): void {
      const set = openExperts(config.experts, dataset, model);
      checkEpochs(set, config);
      synthetic.setLr(E.tensor(config.lrTeacher, { shape: [] }).requiresGrad_());
      if (config.softLabels) {
        // TESLA's teacher labels: a random expert's class probabilities at the end of its training.
        const labels = E.tidy(() => {
          const expert = set.complete[E.randint(0, set.complete.length, [1], { generator: gen }).item()];
          const net = createNetwork(model, dataset.imageShape, dataset.numClasses);
          const state = unflattenParams(set.load(expert, set.epochs), set.manifest.layout);
          const logits = E.noGrad(() => net.forward(state, synthetic.decode().images, { train: false }));
          return E.nn.softmax(logits, 1);
        });
        synthetic.setLabels(labels.keep());
      }
    },

    step(ctx: MethodContext, config: TrajectoryConfig): StepResult {
      const { dataset, synthetic, gen, model, state } = ctx;
      const set = openExperts(config.experts, dataset, model);
      checkEpochs(set, config);
      const lr = synthetic.lr;
      if (!lr)
        throw new Error(`${o.name}: the synthetic set has no learnable learning rate (init was not run)`);
      // The schema ties learnLabels to softLabels, so these are init's soft labels; a resumed run
      // loads them as plain tensors, and they become leaves to learn again.
      if (config.learnLabels && !synthetic.labels.requiresGrad) synthetic.labels.requiresGrad_();
      const net = createNetwork(model, dataset.imageShape, dataset.numClasses);
      const dsa = config.dsa
        ? new DSA({ strategy: config.dsaStrategy ?? defaultStrategy(dataset.name) })
        : null;
      return E.tidy(() => {
        const { expert, startEpoch } = sampleIteration(set, config, gen);
        const { images, labels } = synthetic.decode();
        const problem: TrajectoryProblem = {
          net,
          layout: set.manifest.layout,
          start: set.load(expert, startEpoch),
          target: set.load(expert, startEpoch + config.expertEpochs),
          images,
          labels,
          lr,
          steps: sampleSteps(images.size(0), config, dsa, gen),
          dsa,
        };
        // The run's optimizer owns the images; the lr and learned labels have their own SGD.
        const imageTensors = synthetic.parameterization.tensors;
        const wrt = [...imageTensors, ...(config.learnLabels ? [labels] : []), lr];
        const { loss, grads } = (o.constantMemory ? constantMemoryGradients : unrolledGradients)(
          problem,
          wrt,
        );
        const lrGrad = grads.pop() as E.Tensor;
        const labelGrad = config.learnLabels ? grads.pop() : undefined;
        ctx.update(grads, loss);
        sgdWithMomentum(state, 'lrMomentum', lr, lrGrad, config.lrLr);
        if (labelGrad) sgdWithMomentum(state, 'labelMomentum', labels, labelGrad, config.lrLabels);
        return { loss };
      });
    },
  };
}

export const mtt = trajectoryMatching({
  name: 'mtt',
  constantMemory: false,
  summary: 'match expert training trajectories with unrolled student updates (Cazenavette et al. 2022)',
});

export const tesla = trajectoryMatching({
  name: 'tesla',
  constantMemory: true,
  summary:
    "MTT's gradient in memory constant in the unrolled steps, with soft teacher labels (Cui et al. 2023)",
});
