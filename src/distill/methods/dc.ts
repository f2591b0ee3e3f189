// Gradient matching: DC (Zhao et al. 2021) and DSA (Zhao & Bilen 2021);
// reference VICO-UoE/DatasetCondensation main.py + utils.py. Each outer
// iteration fetches a fresh random network, then `outerLoop` times:
//   for each class c: g_real = grad_theta CE(net(A_c(real_c))) (detached),
//                     g_syn  = grad_theta CE(net(A_c(syn_c)))  (graph kept),
//                     L += d(g_syn, g_real)
//   one update of the images with grad_S L (second order: through g_syn),
//   then (except after the last) `innerLoop` epochs of training the network on S.
// A_c is the identity for DC and one Siamese DSA draw per class for DSA. Each
// class is matched and differentiated on its own, so only one class's
// second-order graph is alive at a time (the sum of per-class gradients is the
// reference's gradient of the summed loss).
import { z } from 'zod';
import * as E from '../../engine/index.js';
import { DSA, type SegmentParams, methodDsa } from '../../augment/index.js';
import type { Dataset } from '../../data/dataset.js';
import { lowPrecisionGradients, trainEpoch } from '../../eval/index.js';
import { createNetwork, gradientLeaves, type Network, type NetState } from '../../models/index.js';
import { DISTANCES, gradientDistance, type Distance } from '../matching.js';
import type { Method, MethodContext, StepResult } from '../method.js';
import { registerMethod } from '../registry.js';
import { myClasses, reduceGradients, sharedWorld } from '../dataparallel.js';
import { precisionOption } from '../precision.js';

function makeSchema(dsaDefault: boolean) {
  return z
    .object({
      batchReal: z
        .number()
        .int()
        .positive()
        .default(256)
        .describe('Real images per class per matching step.'),
      outerLoop: z
        .number()
        .int()
        .positive()
        .optional()
        .describe('Image updates per outer iteration; default by IPC (see loopsForIpc).'),
      innerLoop: z
        .number()
        .int()
        .nonnegative()
        .optional()
        .describe('Epochs of network training on S between image updates; default by IPC.'),
      distance: z
        .enum(DISTANCES)
        .default('ours')
        .describe("Gradient distance: layer-wise row cosine ('ours'), 'mse' or 'cos'."),
      dsa: z
        .boolean()
        .default(dsaDefault)
        .describe('Siamese DSA inside the matching and DSA when training the network on S.'),
      dsaStrategy: z
        .string()
        .optional()
        .describe("DSA strategy; default: the dataset's (no flips for digits)."),
      lrNet: z
        .number()
        .positive()
        .default(0.01)
        .describe('Learning rate of the network trained on S (SGD, no momentum).'),
      batchTrain: z.number().int().positive().default(256).describe('Batch size of that training.'),
      bnImagesPerClass: z
        .number()
        .int()
        .positive()
        .default(16)
        .describe(
          'Batch-norm networks: real images per class that set the running statistics before each matching.',
        ),
      realDtype: precisionOption('auto').describe(
        "Precision of the real-batch gradients, the matching targets (see precision.ts); bfloat16 runs them on a channels-last copy of the network, while the synthetic side and its second-order pass stay float32. Default auto (bfloat16 where the CPU has it): measured on MNIST to keep DC's accuracy at IPC 1 and 10 and DSA's at IPC 1 (docs/benchmarks.md, DC speed).",
      ),
    })
    .strict();
}

export type GradientMatchingConfig = z.infer<ReturnType<typeof makeSchema>>;

/** (outerLoop, innerLoop) of the reference for these IPCs. */
const REFERENCE_LOOPS: [ipc: number, outer: number, inner: number][] = [
  [1, 1, 1],
  [10, 10, 50],
  [20, 20, 25],
  [30, 30, 20],
  [40, 40, 15],
  [50, 50, 10],
];

/**
 * The reference's (outerLoop, innerLoop) for its IPCs; for any other IPC, linear
 * interpolation between the neighbouring entries, rounded (e.g. IPC 5 -> (5, 23)),
 * and the IPC-50 entry above 50.
 */
export function loopsForIpc(ipc: number): { outerLoop: number; innerLoop: number } {
  const last = REFERENCE_LOOPS[REFERENCE_LOOPS.length - 1];
  if (ipc >= last[0]) return { outerLoop: last[1], innerLoop: last[2] };
  for (let i = 0; i + 1 < REFERENCE_LOOPS.length; i++) {
    const [i0, o0, n0] = REFERENCE_LOOPS[i];
    const [i1, o1, n1] = REFERENCE_LOOPS[i + 1];
    if (ipc >= i0 && ipc <= i1) {
      const t = (ipc - i0) / (i1 - i0);
      return { outerLoop: Math.round(o0 + t * (o1 - o0)), innerLoop: Math.round(n0 + t * (n1 - n0)) };
    }
  }
  throw new Error(`loopsForIpc: ipc must be a positive integer, got ${ipc}`);
}

export interface ClassBatch {
  images: E.Tensor;
  labels: E.Tensor;
}

export interface MatchingOptions {
  distance: Distance;
  /** The class's Siamese draw, applied to both batches. */
  augment?: { dsa: DSA; draw: SegmentParams };
  /** Batch norm: false uses (frozen) running statistics. */
  train: boolean;
  /**
   * The state the real gradient is taken at, when not `state` itself: a lower-precision copy
   * (gradientLeaves) whose parameters are leaves that require grad. The gradient comes back in the
   * dtype of `state`.
   */
  realState?: NetState;
}

/**
 * d(grad CE(syn), grad CE(real)) for one class: differentiable with respect to
 * syn.images (the real gradient is a constant).
 */
export function classMatchingLoss(
  net: Network,
  state: NetState,
  real: ClassBatch,
  syn: ClassBatch,
  o: MatchingOptions,
): E.Tensor {
  const params = [...state.params.values()];
  const augment = (x: E.Tensor) => (o.augment ? o.augment.dsa.apply(x, [o.augment.draw], [x.size(0)]) : x);
  const lossOn = (b: ClassBatch) =>
    E.nn.crossEntropy(net.forward(state, augment(b.images), { train: o.train }), b.labels);
  const gReal = o.realState
    ? lowPrecisionGradients(net, o.realState, augment(real.images), real.labels, { train: o.train }).grads
    : E.grad(lossOn(real), params);
  const gSyn = E.grad(lossOn(syn), params, { createGraph: true });
  return gradientDistance(gSyn, gReal, o.distance);
}

/** Batch norm as in the reference: running statistics from a small real batch (train-mode forward), then frozen. */
export function setBatchNormStatistics(
  net: Network,
  state: NetState,
  dataset: Dataset,
  perClass: number,
  gen: E.Generator,
): void {
  E.noGrad(() =>
    E.tidy(() => {
      const n = Math.min(perClass, dataset.smallestClassSize);
      net.forward(state, dataset.gather(dataset.sampleIndices(n, gen)).images, { train: true });
    }),
  );
}

interface OuterIteration {
  ctx: MethodContext;
  config: GradientMatchingConfig;
  net: Network;
  state: NetState;
  dsa: DSA | null;
  batchReal: number;
  batchNorm: boolean;
}

/** One matching step over all classes and the image update; returns the summed loss. */
function matchAndUpdate({ ctx, config, net, state, dsa, batchReal, batchNorm }: OuterIteration): number {
  const { dataset, synthetic, gen } = ctx;
  const k = dataset.numClasses;
  return E.tidy(() => {
    const decoded = synthetic.decode();
    const learnLabels = decoded.labels.requiresGrad;
    // At this step's network (it changes between image updates); disposed with this scope.
    const realState = config.realDtype === 'bfloat16' ? gradientLeaves(state, 'bfloat16') : undefined;
    const indices = dataset.sampleIndices(batchReal, gen);
    const draws = dsa?.sample(k, gen) ?? null;
    let total = 0;
    const imageGrads: E.Tensor[] = [];
    const labelGrads: E.Tensor[] = [];
    // Data parallel: this rank matches its classes (every rank drew the same indices and augmentation);
    // the other classes' rows get zeros here and their gradients from the other ranks in the sum.
    const group = sharedWorld(ctx.world);
    const mine = new Set(myClasses(k, group));
    for (let c = 0; c < k; c++) {
      if (!mine.has(c)) {
        imageGrads.push(E.zerosLike(synthetic.classRows(decoded.images, c)));
        if (learnLabels) labelGrads.push(E.zerosLike(synthetic.classRows(decoded.labels, c)));
        continue;
      }
      const { value, grads } = E.tidy(() => {
        const synImages = synthetic.classRows(decoded.images, c);
        const synLabels = synthetic.classRows(decoded.labels, c);
        const loss = classMatchingLoss(
          net,
          state,
          dataset.gather(indices.slice(c * batchReal, (c + 1) * batchReal)),
          { images: synImages, labels: synLabels },
          {
            distance: config.distance,
            augment: draws && dsa ? { dsa, draw: draws[c] } : undefined,
            train: !batchNorm,
            realState,
          },
        );
        // Each class's second-order graph is freed before the next class is built.
        return {
          value: loss.item(),
          grads: E.grad(loss, learnLabels ? [synImages, synLabels] : [synImages]),
        };
      });
      total += value;
      imageGrads.push(grads[0]);
      if (learnLabels) labelGrads.push(grads[1]);
    }
    const labelGrad = learnLabels ? E.cat(labelGrads, 0) : null;
    const grads = synthetic.pullBack(decoded, E.cat(imageGrads, 0), labelGrad);
    if (!group) {
      ctx.update(grads, total);
      return total;
    }
    const shared = reduceGradients(group, grads, synthetic.learnable, total);
    ctx.update(shared.grads, shared.loss);
    return shared.loss;
  });
}

function gradientMatching(o: {
  name: string;
  dsa: boolean;
  init: 'noise' | 'real';
  summary: string;
}): Method<GradientMatchingConfig> {
  return {
    name: o.name,
    family: 'parameter matching',
    subFamily: 'single step: gradient matching',
    summary: o.summary,
    needs: 'a dataset; second-order gradients (double backprop through the network)',
    dataParallel: true,
    // The synthetic side's cross-entropy takes soft labels, differentiably.
    labelGradients: true,
    schema: makeSchema(o.dsa) as z.ZodType<GradientMatchingConfig>,
    defaults: {
      init: o.init,
      iterations: 1000,
      optimizer: { kind: 'sgd', lr: 0.1, momentum: 0.5 },
      // main.py evaluates a DC set with get_daparam's augmentation, a DSA set with DSA.
      evalAugment: o.dsa ? true : 'dc',
    },

    step(ctx: MethodContext, config: GradientMatchingConfig): StepResult {
      const { dataset, synthetic, gen, model } = ctx;
      const loops = loopsForIpc(synthetic.ipc);
      const outerLoop = config.outerLoop ?? loops.outerLoop;
      const innerLoop = config.innerLoop ?? loops.innerLoop;
      const net = createNetwork(model, dataset.imageShape, dataset.numClasses);
      const state = net.init(gen);
      const params = [...state.params.values()].map((p) => p.requiresGrad_());
      const opt = new E.SGD(params, { lr: config.lrNet });
      const dsa = methodDsa(config, dataset.name);
      const outer: OuterIteration = {
        ctx,
        config,
        net,
        state,
        dsa,
        // A class smaller than batchReal gives all it has (the reference's permutation, first n).
        batchReal: Math.min(config.batchReal, dataset.smallestClassSize),
        batchNorm: state.buffers.size > 0,
      };
      let total = 0;
      try {
        for (let ol = 0; ol < outerLoop; ol++) {
          if (outer.batchNorm) setBatchNormStatistics(net, state, dataset, config.bnImagesPerClass, gen);
          total += matchAndUpdate(outer);
          if (ol === outerLoop - 1) break;
          E.tidy(() => {
            const { images, labels } = synthetic.decode();
            const train = { images: images.detach(), labels: labels.detach() };
            for (let e = 0; e < innerLoop; e++)
              trainEpoch(net, state, opt, train, { batchSize: config.batchTrain, augment: dsa, gen });
          });
        }
      } finally {
        opt.disposeState();
        for (const t of [...state.params.values(), ...state.buffers.values()]) t.dispose();
      }
      // As the reference reports it: mean per class and per image update.
      return { loss: total / (outerLoop * dataset.numClasses) };
    },
  };
}

export const dc = registerMethod(
  gradientMatching({
    name: 'dc',
    dsa: false,
    init: 'noise',
    summary:
      'match per-class gradients of real and synthetic batches on networks trained on S (Zhao et al. 2021)',
  }),
);

export const dsa = registerMethod(
  gradientMatching({
    name: 'dsa',
    dsa: true,
    init: 'real',
    summary: 'DC with Differentiable Siamese Augmentation on both sides of the matching (Zhao & Bilen 2021)',
  }),
);
