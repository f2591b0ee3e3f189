// HaBa (Liu et al. 2022, "Dataset Distillation via Factorization"; reference
// Huage001/DatasetFactorization distill_fac.py): trajectory matching (MTT) of a set stored as
// per-class bases x shared hallucinators (the `haba` parameterization), plus the adversarial
// contrastive terms that keep the hallucinators diverse. Each iteration:
//   student: syn_steps SGD steps; each step puts every base through ONE hallucinator drawn at random
//     (rows j of decode()), with DSA; loss L_param = MTT's normalised parameter distance
//   club: two distinct hallucinators j0, j1 on the same bases, DSA, embeddings e0, e1 of a persistent
//     feature network (the adversary); L_club = clubWeight * mean((cos(e0, e1) + 1) / 2)
//   the set (bases, hallucinators, lr) takes one step on L_param + L_club; the lr is clipped at minLr
//   adversary: a fresh pair; it minimises clsWeight * CE(logits, [y; y])
//     + likeliWeight * mean((1 - cos(e0, e1)) / 2) + contrastWeight * SupCon([norm e0, norm e1], y)
//     (temperature 0.07), by SGD (adversaryLr, momentum 0.9); its weights and momentum live in the
//     method state, so checkpoints carry them.
// The gradient of L_param is the one `gradient` names (unrolled MTT by default, as the reference).
import { z } from 'zod';
import * as E from '../../engine/index.js';
import { DSA, methodDsa } from '../../augment/index.js';
import { createNetwork, type Network, type NetState } from '../../models/index.js';
import type { Method, MethodContext, StepResult } from '../method.js';
import { registerMethod } from '../registry.js';
import {
  GRADIENTS,
  iterationProblem,
  trajectoryMatching,
  trajectorySchema,
  type StudentStep,
  type TrajectoryConfig,
} from './mtt.js';

const schema = trajectorySchema('mtt')
  .extend({
    clubWeight: z
      .number()
      .nonnegative()
      .default(0.1)
      .describe(
        "Weight of the set's term that pushes two hallucinations of a base apart (lambda_club_content).",
      ),
    clsWeight: z
      .number()
      .nonnegative()
      .default(1)
      .describe("The adversary's loss weights (the reference's run scripts: 1, 0.1, 0.1)."),
    likeliWeight: z
      .number()
      .nonnegative()
      .default(0.1)
      .describe("The adversary's likelihood (cosine) term weight."),
    contrastWeight: z
      .number()
      .nonnegative()
      .default(0.1)
      .describe("The adversary's supervised-contrastive term weight (temperature 0.07)."),
    adversaryLr: z.number().positive().default(0.001).describe("The adversary's SGD learning rate."),
    adversaryMomentum: z.number().min(0).max(1).default(0.9).describe("The adversary's SGD momentum."),
    adversaryModel: z
      .string()
      .default('ConvNet')
      .describe("Model spec of the adversary (the reference's Extractor is a ConvNet-3 with instance norm)."),
    minLr: z
      .number()
      .nonnegative()
      .default(0.001)
      .describe('The learned lr is clipped at this after every step.'),
  })
  .strict();

export type HaBaConfig = z.infer<typeof schema>;

/** Supervised contrastive loss (Khosla et al. 2020; contrast_mode 'all'): features [B, views, D], labels [B]. */
export function supConLoss(features: E.Tensor, labels: E.Tensor, temperature = 0.07, base = 0.07): E.Tensor {
  const [b, views] = features.shape;
  const contrast = E.cat(
    Array.from({ length: views }, (_, v) => features.select(1, v)),
    0,
  );
  const dots = contrast.matmul(contrast.t()).div(temperature);
  const logits = dots.sub(dots.max(1, true).values.detach());
  const same = labels
    .reshape([-1, 1])
    .eq(labels.reshape([1, -1]))
    .float()
    .repeat(views, views);
  const notSelf = E.onesLike(same).sub(E.eye(b * views));
  const positives = same.mul(notSelf);
  const logProb = logits.sub(logits.exp().mul(notSelf).sum(1, true).log());
  const meanPositive = positives.mul(logProb).sum(1).div(positives.sum(1));
  return meanPositive.mul(-temperature / base).mean();
}

function cosine(a: E.Tensor, b: E.Tensor): E.Tensor {
  return a
    .mul(b)
    .sum(1)
    .div(a.norm(2, 1).mul(b.norm(2, 1)).clamp(1e-8));
}

function normalize(a: E.Tensor): E.Tensor {
  return a.div(a.norm(2, 1, true).clamp(1e-12));
}

interface Layout {
  classes: number;
  hallucinators: number;
  bases: number;
}

function layoutOf(ctx: MethodContext): Layout {
  const p = ctx.synthetic.parameterization;
  if (p.kind !== 'haba')
    throw new Error(
      `haba trains the 'haba' parameterization (bases x hallucinators); this run stores '${p.kind}' (set parameterization.kind to haba, or use mtt for other parameterizations)`,
    );
  const hallucinators = p.settings.hallucinators as number;
  return { classes: ctx.dataset.numClasses, hallucinators, bases: p.decodedPerClass / hallucinators };
}

/** Decoded rows of hallucinator j for every base of every class (decode() is hallucinator-major within a class). */
function rowsOf(l: Layout, j: number): E.Tensor {
  const rows: number[] = [];
  for (let c = 0; c < l.classes; c++)
    for (let b = 0; b < l.bases; b++) rows.push(c * l.hallucinators * l.bases + j * l.bases + b);
  return E.tensor(Int32Array.from(rows)).long();
}

function baseLabels(l: Layout): E.Tensor {
  return E.arange(l.classes).unsqueeze(1).expand(l.classes, l.bases).flatten();
}

/** Two distinct hallucinators (randperm(n)[:2]) and the two hallucinations of every base, augmented. */
function pair(l: Layout, images: E.Tensor, dsa: DSA | null, gen: E.Generator): E.Tensor {
  const [j0, j1] = E.randperm(l.hallucinators, { generator: gen }).toNumbers();
  const x = E.cat([images.indexSelect(0, rowsOf(l, j0)), images.indexSelect(0, rowsOf(l, j1))], 0);
  return dsa ? dsa.augmentBatch(x, gen) : x;
}

function adversaryState(state: Map<string, E.Tensor>, names: string[]): NetState {
  return {
    params: new Map(names.map((n) => [n, state.get(`adversary.${n}`) as E.Tensor])),
    buffers: new Map(),
  };
}

/** One SGD step (PyTorch's momentum: the first buffer is the gradient) of the adversary. */
function adversaryStep(
  ctx: MethodContext,
  config: HaBaConfig,
  net: Network,
  names: string[],
  x: E.Tensor,
  l: Layout,
): void {
  const state = adversaryState(ctx.state, names);
  const params = [...state.params.values()].map((p) => p.requiresGrad_());
  const y = baseLabels(l);
  const n = y.size(0);
  const embed = net.embed(state, x, { train: true });
  const logits = net.forward(state, x, { train: true });
  const [e0, e1] = [embed.narrow(0, 0, n), embed.narrow(0, n, n)];
  const cos = cosine(e0, e1);
  const loss = E.nn
    .crossEntropy(logits, E.cat([y, y], 0))
    .mul(config.clsWeight)
    .add(cos.neg().add(1).div(2).mean().mul(config.likeliWeight))
    .add(supConLoss(E.stack([normalize(e0), normalize(e1)], 1), y).mul(config.contrastWeight));
  const grads = E.grad(loss, params);
  E.noGrad(() =>
    names.forEach((name, i) => {
      const key = `adversary.momentum.${name}`;
      const previous = ctx.state.get(key);
      const buffer = previous ? previous.mul(config.adversaryMomentum).add(grads[i]) : grads[i].clone();
      previous?.dispose();
      ctx.state.set(key, buffer.keep());
      params[i].sub_(buffer.mul(config.adversaryLr));
    }),
  );
}

const trajectory = trajectoryMatching({ name: 'mtt', summary: '' });

export const haba: Method<HaBaConfig> = registerMethod({
  name: 'haba',
  family: 'parameter matching',
  subFamily: 'multi step: trajectory matching',
  usesExperts: true,
  summary:
    'trajectory matching of bases x hallucinators with adversarial contrastive terms (Liu et al. 2022; parameterization haba)',
  needs: "expert trajectories (`distillery experts`); the 'haba' parameterization (its default)",
  schema: schema as z.ZodType<HaBaConfig>,
  defaults: {
    init: 'real',
    iterations: 5000,
    parameterization: { kind: 'haba' },
    // distill_fac.py: bases and hallucinators SGD lr 100 momentum 0.95 (lr_img, lr_style); the lr momentum 0.9.
    optimizer: { kind: 'sgd', lr: 100, momentum: 0.95 },
    optimizers: {
      decoder: { kind: 'sgd', lr: 100, momentum: 0.95 },
      lr: { kind: 'sgd', lr: 1e-5, momentum: 0.9 },
    },
  },
  labelGradients: true,

  init(ctx: MethodContext, config: HaBaConfig): void {
    if (config.lossThreshold !== null)
      throw new Error("haba does not apply DATM's lossThreshold; leave methodConfig.lossThreshold null");
    const l = layoutOf(ctx);
    if (l.hallucinators < 2)
      throw new Error(
        `haba contrasts two hallucinations of each base, so it needs at least 2 hallucinators (parameterization.hallucinators is ${l.hallucinators})`,
      );
    if (config.batchSyn !== undefined)
      throw new Error(
        'haba puts every base through one hallucinator in each student step (the reference default batch_syn); methodConfig.batchSyn is not supported',
      );
    trajectory.init?.(ctx, config as TrajectoryConfig);
    const net = createNetwork(config.adversaryModel, ctx.dataset.imageShape, ctx.dataset.numClasses);
    if (net.hasBatchNorm)
      throw new Error(
        `haba: the adversary model '${config.adversaryModel}' has batch norm; use an instance-norm model such as ConvNet (the reference's Extractor)`,
      );
    const state = net.init(ctx.gen);
    for (const [name, t] of state.params) ctx.state.set(`adversary.${name}`, t);
    for (const t of state.buffers.values()) t.dispose();
  },

  step(ctx: MethodContext, config: HaBaConfig): StepResult {
    const l = layoutOf(ctx);
    const { synthetic, gen, dataset } = ctx;
    if (!synthetic.lr)
      throw new Error('haba: the synthetic set has no learnable learning rate (init was not run)');
    const net = createNetwork(config.adversaryModel, dataset.imageShape, dataset.numClasses);
    const names = [...ctx.state.keys()]
      .filter((k) => k.startsWith('adversary.') && !k.startsWith('adversary.momentum.'))
      .map((k) => k.slice('adversary.'.length));
    const dsa = methodDsa(config, dataset.name);
    return E.tidy(() => {
      // Each student step: all bases through one hallucinator drawn at random.
      const steps = (_m: number, stepDsa: DSA | null, g: E.Generator): StudentStep[] =>
        Array.from({ length: config.synSteps }, () => {
          const j = E.randint(0, l.hallucinators, [1], { generator: g }).item();
          const indices = rowsOf(l, j);
          return {
            indices,
            draws: stepDsa ? stepDsa.sample(indices.size(0), g, { sharedGroup: true }) : null,
          };
        });
      const problem = iterationProblem(ctx, config as TrajectoryConfig, steps);
      const { loss, grads } = GRADIENTS[config.gradient](problem, synthetic.learnable);
      const state = adversaryState(ctx.state, names);
      // Decoded afresh: the trajectory gradient has used (and freed) the graph of problem.images.
      const x = pair(l, synthetic.decode().images, dsa, gen);
      const embed = net.embed(state, x, { train: true });
      const n = x.size(0) / 2;
      const club = cosine(embed.narrow(0, 0, n), embed.narrow(0, n, n))
        .add(1)
        .div(2)
        .mean()
        .mul(config.clubWeight);
      const clubGrads = E.grad(club, synthetic.learnable, { allowUnused: true });
      const total = grads.map((g, i) => (clubGrads[i] ? g.add(clubGrads[i] as E.Tensor) : g));
      const value = loss + club.item();
      ctx.update(total, value);
      E.noGrad(() => synthetic.lr?.clamp_(config.minLr));
      adversaryStep(
        ctx,
        config,
        net,
        names,
        E.noGrad(() => pair(l, synthetic.decode().images, dsa, gen)),
        l,
      );
      return { loss: value };
    });
  },
});
