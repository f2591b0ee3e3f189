// DD, Dataset Distillation by meta-learning (Wang, Zhu, Torralba, Efros 2018; reference
// ssnl/dataset-distillation): performance matching by backpropagation through training. Each iteration
// draws a fresh network (the reference's 'unknown_init': Xavier-normal weights, zero biases), trains it
// on the synthetic set for T = steps x epochs unrolled SGD steps (step s of each epoch uses its own
// images: `imagesPerStep` per class), each with its own learned lr, and measures cross-entropy on a random
// real batch with the trained weights; the images and the per-step lrs follow the gradient of that loss
// through every step (second order at each step; the graph, and so memory, grows with T).
//   reference defaults: distill_steps 10 x distill_epochs 3, 1 image per class per step, lrs initialised
//   0.02 and parameterised by softplus, images from N(0, 1), Adam lr 0.01 betas (0.5, 0.999) on images
//   and lrs with x0.5 every 40 epochs, real batch 1024, LeNet.
// Options beyond the reference: `momentum` (BPTT through SGD with momentum, which the survey recommends
// after Deng & Russakovsky 2022; 0 = the reference's plain SGD) and `truncate` (backpropagate through only
// the last k steps). The per-step lrs are the method's state (their own Adam, with the reference's
// settings), since a schedule of T lrs is not the single learned lr the evaluation protocol takes.
import { z } from 'zod';
import * as E from '../../engine/index.js';
import { createNetwork, type Network, type NetState } from '../../models/index.js';
import type { Method, MethodContext, StepResult } from '../method.js';
import { registerMethod } from '../registry.js';
import { stepInState } from '../statestep.js';

const schema = z
  .object({
    imagesPerStep: z
      .number()
      .int()
      .positive()
      .default(1)
      .describe(
        'Synthetic images per class used by each unrolled step (distilled_images_per_class_per_step).',
      ),
    epochs: z
      .number()
      .int()
      .positive()
      .default(3)
      .describe('Passes over the synthetic steps (distill_epochs).'),
    lrInit: z.number().positive().default(0.02).describe('Initial per-step lr (distill_lr).'),
    lrLr: z
      .number()
      .nonnegative()
      .default(0.01)
      .describe("Adam lr of the per-step lrs (the reference optimises them with the images' Adam, lr 0.01)."),
    momentum: z
      .number()
      .min(0)
      .max(1)
      .default(0)
      .describe("Momentum of the unrolled SGD (0: the reference; 0.9: RTP's BPTT with momentum)."),
    truncate: z
      .number()
      .int()
      .nonnegative()
      .default(0)
      .describe('Backpropagate through only the last k unrolled steps (0: all, the reference).'),
    batchReal: z
      .number()
      .int()
      .positive()
      .default(1024)
      .describe('Real images per iteration (random, all classes).'),
    netInit: z
      .enum(['xavier', 'default'])
      .default('xavier')
      .describe(
        "Network initialisation per iteration: 'xavier' (the reference: Xavier normal, zero biases) or the model's.",
      ),
  })
  .strict();

export type DDConfig = z.infer<typeof schema>;

/**
 * Xavier-normal weights (gain 1) and zero biases for convolutions and linear layers, as the reference's
 * init 'xavier'; normalisation layers keep their 1 / 0. A bias is the 1-D `<layer>.bias` next to a weight
 * of two or more dimensions.
 */
function xavier(state: NetState, gen: E.Generator): NetState {
  const params = new Map<string, E.Tensor>();
  const biases = new Set(
    [...state.params]
      .filter(
        ([name, p]) =>
          name.endsWith('.bias') &&
          (state.params.get(name.replace(/\.bias$/, '.weight'))?.ndim ?? 0) >= 2 &&
          p.ndim === 1,
      )
      .map(([name]) => name),
  );
  for (const [name, p] of state.params) {
    if (p.ndim >= 2) {
      const field = p.shape.slice(2).reduce((a, b) => a * b, 1);
      const std = Math.sqrt(2 / ((p.size(0) + p.size(1)) * field));
      params.set(name, E.randn(p.shape, { generator: gen }).mul(std));
    } else if (biases.has(name)) params.set(name, E.zerosLike(p));
    else {
      params.set(name, p);
      continue;
    }
    p.dispose();
  }
  return { params, buffers: state.buffers };
}

export interface UnrolledProblem {
  net: Network;
  /** Initial weights (constants). */
  state: NetState;
  /** Decoded synthetic images and hard labels, class-ordered. */
  images: E.Tensor;
  labels: E.Tensor;
  /** Row indices of each distinct step's batch. */
  steps: E.Tensor[];
  /** Per-step lrs (length steps x epochs), differentiable. */
  lrs: E.Tensor;
  momentum: number;
  truncate: number;
  real: { images: E.Tensor; labels: E.Tensor };
}

/** Cross-entropy on the real batch after T unrolled (momentum-)SGD steps on the synthetic batches. */
export function unrolledLoss(p: UnrolledProblem): E.Tensor {
  const names = [...p.state.params.keys()];
  const total = p.lrs.size(0);
  const first = p.truncate > 0 ? Math.max(0, total - p.truncate) : 0;
  let params = names.map((n) => (p.state.params.get(n) as E.Tensor).detach().requiresGrad_());
  let velocity = null as E.Tensor[] | null;
  const forward = (w: E.Tensor[], x: E.Tensor) =>
    p.net.forward({ params: new Map(names.map((n, i) => [n, w[i]])), buffers: p.state.buffers }, x, {
      train: true,
    });
  for (let t = 0; t < total; t++) {
    const graph = t >= first;
    if (t === first && first > 0) {
      // Truncation: the steps before the window are constants of the backward pass.
      params = params.map((w) => w.detach().requiresGrad_());
      velocity = velocity?.map((v) => v.detach()) ?? null;
    }
    const idx = p.steps[t % p.steps.length];
    const x = graph ? p.images.indexSelect(0, idx) : p.images.detach().indexSelect(0, idx);
    const loss = E.nn.crossEntropy(forward(params, x), p.labels.indexSelect(0, idx));
    const g = E.grad(loss, params, { createGraph: graph });
    const prev: E.Tensor[] | null = velocity;
    velocity = prev && p.momentum > 0 ? g.map((gi, i) => prev[i].mul(p.momentum).add(gi)) : g;
    const lr = graph ? p.lrs.select(0, t) : p.lrs.detach().select(0, t);
    const v = velocity;
    params = params.map((w, i) => w.sub(v[i].mul(lr)));
  }
  return E.nn.crossEntropy(forward(params, p.real.images), p.real.labels);
}

/** Row indices of step s: `per` images of every class, from each class's s-th block. */
function stepBatches(classes: number, ipc: number, per: number): E.Tensor[] {
  return Array.from({ length: ipc / per }, (_, s) =>
    E.tensor(
      Array.from({ length: classes * per }, (_, j) => Math.floor(j / per) * ipc + s * per + (j % per)),
      { dtype: 'int64' },
    ).keep(),
  );
}

const softplusInverse = (y: number) => Math.log(Math.expm1(y));

export const dd: Method<DDConfig> = registerMethod({
  name: 'dd',
  family: 'performance matching',
  subFamily: 'meta-learning',
  summary:
    'backpropagate through unrolled training on the synthetic set, with learned per-step lrs (Wang et al. 2018)',
  needs: 'a dataset; second-order gradients through every unrolled step (memory grows with steps x epochs)',
  schema: schema as z.ZodType<DDConfig>,
  defaults: {
    init: 'noise',
    model: 'LeNet',
    iterations: 23400,
    optimizer: {
      kind: 'adam',
      lr: 0.01,
      betas: [0.5, 0.999],
      schedule: { kind: 'step', every: 2340, gamma: 0.5 },
    },
  },
  labelGradients: false,

  init(ctx: MethodContext, config: DDConfig): void {
    const ipc = ctx.synthetic.decodedPerClass;
    if (ipc % config.imagesPerStep !== 0)
      throw new Error(
        `dd: imagesPerStep ${config.imagesPerStep} does not divide the ${ipc} images per class`,
      );
    const total = (ipc / config.imagesPerStep) * config.epochs;
    ctx.state.set('rawLrs', E.full([total], softplusInverse(config.lrInit)).keep());
  },

  step(ctx: MethodContext, config: DDConfig): StepResult {
    const { dataset, synthetic, gen, model, update } = ctx;
    const net = createNetwork(model, dataset.imageShape, dataset.numClasses);
    const drawn = net.init(gen);
    const state = config.netInit === 'xavier' ? xavier(drawn, gen) : drawn;
    const steps = stepBatches(dataset.numClasses, synthetic.decodedPerClass, config.imagesPerStep);
    try {
      return E.tidy(() => {
        const n = dataset.train.images.size(0);
        const idx = E.randperm(n, { generator: gen }).narrow(0, 0, Math.min(config.batchReal, n));
        const real = {
          images: dataset.train.images.indexSelect(0, idx),
          labels: dataset.train.labels.indexSelect(0, idx),
        };
        const raw = (ctx.state.get('rawLrs') as E.Tensor).detach().requiresGrad_();
        const { images, labels } = synthetic.decode();
        if (labels.dtype !== 'int64')
          throw new Error('dd trains its unrolled steps on hard labels (labels.init hard)');
        const loss = unrolledLoss({
          net,
          state,
          images,
          labels,
          steps,
          lrs: raw.softplus(),
          momentum: config.momentum,
          truncate: config.truncate,
          real,
        });
        const value = loss.item();
        const grads = E.grad(loss, [...synthetic.learnable, raw], { allowUnused: true });
        const lrGrad = grads.pop();
        update(grads, value);
        // The raw lrs' Adam (the reference optimises them with the images' Adam: betas (0.5, 0.999)).
        if (lrGrad && config.lrLr > 0 && Number.isFinite(value))
          stepInState(
            ctx.state,
            'rawLrs.',
            ['rawLrs'],
            [lrGrad],
            (p) => new E.Adam(p, { lr: config.lrLr, betas: [0.5, 0.999] }),
          );
        return { loss: value };
      });
    } finally {
      for (const t of [...state.params.values(), ...state.buffers.values(), ...steps]) t.dispose();
    }
  },
});
