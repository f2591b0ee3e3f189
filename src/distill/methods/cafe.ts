// CAFE, Condensing datasets by Aligning FEatures (Wang et al. 2022; reference kaiwang960112/CAFE
// distill.py). Each iteration draws a fresh random network and alternates, adaptively:
//   one image update on   L = sum_l w_l sum_c ||mean f_l(real_c) - mean f_l(syn_c)||^2       (alignment)
//                           + w_L sum_c ||mean e(real_c) - mean e(syn_c)||^2                  (f5's term)
//                           + innerWeight sum_i CE(e(real_i) . centres^T, y_i)              (discrimination)
//   with f_l the ReLU output of each block (before pooling) and the last pooled map, e its flattened
//   embedding, centres the synthetic class means of e (raw dot products, no temperature, summed CE);
//   then epochs of plain SGD training of the network on a detached copy of the set.
// Both loops stop on the network's accuracy on 128 real training images per class, watched over a
// window of 10: the image updates stop once the accuracy range is below lambda1 (checked before the
// network trains, so at least 10 updates), each training phase once it exceeds lambda2. The watched
// value keeps the reference's running sum, acc_k = (acc_{k-1} + sum_c acc_{k,c}) / classes, which it
// never resets within a loop (distill.py:296-305). The reference has no upper bound on either loop;
// `maxImageSteps` and `maxNetEpochs` bound them (large defaults) so a run can never hang.
// The reference's CE of the network's own logits on the real images adds nothing to the image
// gradient and is left out of the loss (it only changed the reference's logged value).
import { z } from 'zod';
import * as E from '../../engine/index.js';
import { DSA, type SegmentParams, methodDsa } from '../../augment/index.js';
import type { Dataset } from '../../data/dataset.js';
import { trainEpoch } from '../../eval/index.js';
import { createNetwork, type Network, type NetState } from '../../models/index.js';
import type { Method, MethodContext, StepResult } from '../method.js';
import { anyRank, myClasses, reduceGradients, refuseBatchNorm, sharedWorld } from '../dataparallel.js';
import { registerMethod } from '../registry.js';

const schema = z
  .object({
    batchReal: z.number().int().positive().default(256).describe('Real images per class per image update.'),
    layerWeights: z
      .array(z.number().nonnegative())
      .default([0.1, 0.1, 1, 1])
      .describe(
        "Alignment weight of each feature from net.blockFeatures (ConvNet-3: ReLU 1, 2, 3, last pooling; the reference's fourth..first_weight). The last also weighs f5's centre term, so its effective weight doubles, as in the reference.",
      ),
    innerWeight: z
      .number()
      .nonnegative()
      .default(0.01)
      .describe(
        'Weight of the discrimination loss (summed cross-entropy of real features on synthetic centres).',
      ),
    lambda1: z
      .number()
      .nonnegative()
      .default(0.04)
      .describe('Image updates stop once the watched real accuracy varies less than this over the window.'),
    lambda2: z
      .number()
      .nonnegative()
      .default(0.03)
      .describe('Each network-training phase stops once the watched real accuracy varies more than this.'),
    window: z.number().int().min(2).default(10).describe('Length of the accuracy watch window.'),
    probePerClass: z
      .number()
      .int()
      .positive()
      .default(128)
      .describe('Real training images per class of each accuracy probe.'),
    lrNet: z.number().positive().default(0.01).describe('Plain SGD lr of the network trained on S.'),
    batchTrain: z.number().int().positive().default(256).describe('Batch of that training.'),
    maxImageSteps: z
      .number()
      .int()
      .positive()
      .default(1000)
      .describe('Bound on image updates per iteration (the reference has none).'),
    maxNetEpochs: z
      .number()
      .int()
      .positive()
      .default(1000)
      .describe('Bound on epochs of each network-training phase (the reference has none).'),
    dsa: z
      .boolean()
      .default(false)
      .describe(
        "Siamese DSA in the matching and DSA in the network's training (the reference's default method 'DC': off).",
      ),
    dsaStrategy: z
      .string()
      .optional()
      .describe("DSA strategy; default: the dataset's (no flips for digits)."),
  })
  .strict();

export type CAFEConfig = z.infer<typeof schema>;

/** Per-class means of class-ordered rows: [classes, features]. */
function classMeans(x: E.Tensor, classes: number): E.Tensor {
  return x.reshape(classes, x.size(0) / classes, -1).mean(1);
}

/**
 * sum_c || mean_j a_c,j - mean_j b_c,j ||^2 over class-ordered rows (criterion_middle); `real` holds
 * the classes `pick` names (all of them when null), `syn` every class.
 */
function classMeanDistance(real: E.Tensor, syn: E.Tensor, classes: number, pick: E.Tensor | null): E.Tensor {
  const synMeans = classMeans(syn, classes);
  const realMeans = classMeans(real, pick ? pick.size(0) : classes);
  return realMeans
    .sub(pick ? synMeans.indexSelect(0, pick) : synMeans)
    .square()
    .sum();
}

export interface CAFEProblem {
  net: Network;
  state: NetState;
  classes: number;
  /** Real images in class order (the same number per class), with their labels. */
  real: E.Tensor;
  realLabels: E.Tensor;
  /**
   * The classes of `real`, in order, when it holds only some (a data-parallel rank's share: the loss
   * is then that share of the sum over classes); default all.
   */
  realClasses?: number[];
  /** Synthetic images in class order (differentiable). */
  syn: E.Tensor;
  weights: readonly number[];
  innerWeight: number;
  /** One Siamese DSA draw per class (every class), shared by its real and synthetic images, or null. */
  draws: SegmentParams[] | null;
  dsa: DSA | null;
}

/** CAFE's loss (the parts that depend on the synthetic images), differentiable in syn. */
export function cafeLoss(p: CAFEProblem): E.Tensor {
  const realClasses = p.realClasses ?? null;
  const pick = realClasses && E.tensor(Int32Array.from(realClasses)).long();
  const aug = (x: E.Tensor, draws: SegmentParams[] | null) =>
    draws && p.dsa
      ? p.dsa.apply(x, draws, new Array<number>(draws.length).fill(x.size(0) / draws.length))
      : x;
  const realDraws = p.draws && realClasses ? realClasses.map((c) => p.draws![c]) : p.draws;
  const realFeatures = E.noGrad(() => p.net.blockFeatures(p.state, aug(p.real, realDraws), { train: true }));
  const synFeatures = p.net.blockFeatures(p.state, aug(p.syn, p.draws), { train: true });
  if (p.weights.length !== synFeatures.length)
    throw new Error(
      `cafe: methodConfig.layerWeights has ${p.weights.length} weights, but ${p.net.spec} gives ${synFeatures.length} features (one per block and the embedding)`,
    );
  const realEmbedding = realFeatures[realFeatures.length - 1];
  const synEmbedding = synFeatures[synFeatures.length - 1];
  // The discrimination: real embeddings classified by raw dot products with the synthetic centres ...
  const centres = classMeans(synEmbedding, p.classes);
  const logits = realEmbedding.matmul(centres.t());
  let loss = E.nn.crossEntropy(logits, p.realLabels, { reduction: 'sum' }).mul(p.innerWeight);
  // ... f5's class-mean term (criterion_middle on the embedding, equal to the last map's term) ...
  loss = loss.add(classMeanDistance(realEmbedding, synEmbedding, p.classes, pick));
  // ... and the weighted alignment of every feature.
  for (let l = 0; l < synFeatures.length; l++)
    loss = loss.add(classMeanDistance(realFeatures[l], synFeatures[l], p.classes, pick).mul(p.weights[l]));
  return loss;
}

/**
 * The reference's accuracy watcher: values pushed into a window; `check` compares the window's range
 * once it is full, and drops its oldest value when the comparison fails (distill.py:306-313, 339-348).
 */
export class AccuracyWatcher {
  private values: number[] = [];
  private running = 0;

  constructor(
    private readonly window: number,
    private readonly classes: number,
  ) {}

  /** Adds one probe (per-class accuracies) with the reference's never-reset running sum. */
  push(perClass: readonly number[]): number {
    this.running = (this.running + perClass.reduce((a, b) => a + b, 0)) / this.classes;
    this.values.push(this.running);
    return this.running;
  }

  /** Whether the full window's range compares as `test` says; a full window that does not, slides. */
  check(test: (range: number) => boolean): boolean {
    if (this.values.length < this.window) return false;
    const range = Math.max(...this.values) - Math.min(...this.values);
    if (test(range)) return true;
    this.values.shift();
    return false;
  }
}

/** The network's accuracy on `perClass` random real training images of each class (train mode). */
function probe(
  net: Network,
  state: NetState,
  dataset: Dataset,
  perClass: number,
  gen: E.Generator,
): number[] {
  const n = Math.min(perClass, dataset.smallestClassSize);
  return E.tidy(() =>
    E.noGrad(() => {
      const real = dataset.gather(dataset.sampleIndices(n, gen));
      const correct = net.forward(state, real.images, { train: true }).argmax(1).eq(real.labels).float();
      return correct.reshape(dataset.numClasses, n).mean(1).toNumbers();
    }),
  );
}

export const cafe: Method<CAFEConfig> = registerMethod({
  name: 'cafe',
  family: 'distribution matching',
  subFamily: 'layer-wise alignment',
  summary:
    'align per-class means of every layer and classify real features by synthetic centres, on networks trained on S (Wang et al. 2022)',
  needs: 'a dataset; networks trained on S between image updates',
  schema: schema as z.ZodType<CAFEConfig>,
  defaults: {
    init: 'noise',
    iterations: 2000,
    // distill.py: SGD 0.1, momentum 0.5, x0.5 at iterations 1200, 1600 and 1800 (a CLI can set the schedule).
    optimizer: { kind: 'sgd', lr: 0.1, momentum: 0.5 },
    evalAugment: 'dc',
  },
  // The synthetic labels only enter the network's training on S, never the image gradient.
  labelGradients: false,
  dataParallel: true,

  step(ctx: MethodContext, config: CAFEConfig): StepResult {
    const { dataset, synthetic, gen, model } = ctx;
    const k = dataset.numClasses;
    const net = createNetwork(model, dataset.imageShape, k);
    const world = sharedWorld(ctx.world);
    refuseBatchNorm(net, world, 'mix the classes that data parallelism splits');
    // Several ranks: rank r aligns the real images of its classes (c mod size = r); the rest (the
    // network, its training on S, the probes) is replicated from the same stream on every rank.
    const mine = myClasses(k, world);
    const state = net.init(gen);
    const params = [...state.params.values()].map((p) => p.requiresGrad_());
    const opt = new E.SGD(params, { lr: config.lrNet });
    const dsa = methodDsa(config, dataset.name);
    const batchReal = Math.min(config.batchReal, dataset.smallestClassSize);
    const outer = new AccuracyWatcher(config.window, k);
    let total = 0;
    let steps = 0;
    try {
      while (steps < config.maxImageSteps) {
        total += E.tidy(() => {
          const indices = dataset.sampleIndices(batchReal, gen);
          const draws = dsa?.sample(k, gen) ?? null;
          let grads: (E.Tensor | null)[] = synthetic.learnable.map(() => null);
          let value = 0;
          if (mine.length > 0) {
            const real = dataset.gather(
              mine.flatMap((c) => indices.slice(c * batchReal, (c + 1) * batchReal)),
            );
            const loss = cafeLoss({
              net,
              state,
              classes: k,
              real: real.images,
              realLabels: real.labels,
              ...(world ? { realClasses: mine } : {}),
              syn: synthetic.decode().images,
              weights: config.layerWeights,
              innerWeight: config.innerWeight,
              draws,
              dsa,
            });
            value = loss.item();
            grads = E.grad(loss, synthetic.learnable, { allowUnused: true });
          }
          const shared = reduceGradients(world, grads, synthetic.learnable, value);
          ctx.update(shared.grads, shared.loss);
          return shared.loss;
        });
        steps++;
        outer.push(probe(net, state, dataset, config.probePerClass, gen));
        // Every rank's probes see the same network and set; deciding together keeps them in step even
        // where kernels are not deterministic.
        if (
          anyRank(
            world,
            outer.check((range) => range < config.lambda1),
          )
        )
          break;
        // At the bound the network would be trained for nothing: the iteration ends here.
        if (steps === config.maxImageSteps) break;
        trainOnSet(net, state, opt, ctx, config, dsa);
      }
    } finally {
      opt.disposeState();
      for (const t of [...state.params.values(), ...state.buffers.values()]) t.dispose();
    }
    return { loss: total / (steps * k) };
  },
});

/** One training phase on a detached copy of the set: epochs until the watched accuracy moves by lambda2. */
function trainOnSet(
  net: Network,
  state: NetState,
  opt: E.Optimizer,
  { dataset, synthetic, gen, world }: MethodContext,
  config: CAFEConfig,
  dsa: DSA | null,
): void {
  const inner = new AccuracyWatcher(config.window, dataset.numClasses);
  E.tidy(() => {
    const { images, labels } = synthetic.decode();
    const train = { images: images.detach(), labels: labels.detach() };
    for (let epoch = 0; epoch < config.maxNetEpochs; epoch++) {
      trainEpoch(net, state, opt, train, { batchSize: config.batchTrain, augment: dsa, gen });
      inner.push(probe(net, state, dataset, config.probePerClass, gen));
      if (
        anyRank(
          sharedWorld(world),
          inner.check((range) => range > config.lambda2),
        )
      )
        return;
    }
  });
}
