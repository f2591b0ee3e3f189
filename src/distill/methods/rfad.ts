// RFAD, Random Feature Approximation for Dataset distillation (Loo et al. 2022; reference yolky/RFAD,
// distillation.py): KIP's kernel ridge regression with the infinite-width ConvNet NNGP replaced by its
// random-feature estimate. Each iteration draws `models` fresh random ConvNets (width 256, depth 3,
// conv 3x3 -> ReLU -> 2x2 average pool, no normalisation, weights N(0, 2 / fan_in), biases N(0, 0.1),
// no head); the features of all models, concatenated and scaled by 1 / sqrt(models x features), give
//   K = 2 F F^T + 0.01,   ridge = jit tr(K_ss) / n_s (jit 5e-3),   preds = K_ts (K_ss + ridge)^-1 Y_s
// solved in float64, and the loss is Platt-scaled cross-entropy CE(exp(k) preds, y) with a learned
// scalar k (its own AdaBelief, lr 1e-2, from k = 0), or 0.5 mean squared error ('mse'). Real batch:
// 4 x 1280 random training images per iteration, features without gradients. Images and labels:
// AdaBelief lr 1e-3, eps 1e-16. Labels are centred one-hot targets, learned by default (the README's
// --platt --learn_labels command).
// Not implemented: the reference's learnable d x d input transform (identity init, lr 5e-5; the saved
// images are the transformed ones) and its validation-based early stopping (patience 1,000 over up to
// 100,000 iterations): this loop runs the configured iterations.
import { z } from 'zod';
import * as E from '../../engine/index.js';
import type { Dataset } from '../../data/dataset.js';
import { centredOneHot, krrAccuracy, krrSolve } from '../../kernels/index.js';
import type { Method, MethodContext, StepResult } from '../method.js';
import { registerMethod } from '../registry.js';
import { stepInState } from '../statestep.js';
import type { SyntheticSet } from '../synthetic.js';

const schema = z
  .object({
    models: z
      .number()
      .int()
      .positive()
      .default(8)
      .describe("Random ConvNets per iteration (the reference's n_models)."),
    width: z
      .number()
      .int()
      .positive()
      .default(256)
      .describe('Channels of each random ConvNet (the reference: k = 2 x net_width 128).'),
    depth: z.number().int().positive().default(3).describe('Convolutional blocks of each network.'),
    batchReal: z
      .number()
      .int()
      .positive()
      .default(5120)
      .describe('Real training images per iteration, drawn at random (the reference: n_batches 4 x 1280).'),
    realChunk: z.number().int().positive().default(1280).describe('Real images per no-grad forward.'),
    jit: z
      .number()
      .nonnegative()
      .default(5e-3)
      .describe("Ridge relative to the mean diagonal of K_ss (the reference's jit)."),
    loss: z
      .enum(['platt', 'mse'])
      .default('platt')
      .describe("'platt' (cross-entropy on exp(k) x predictions, k learned) or 'mse'."),
    plattLr: z.number().positive().default(1e-2).describe('AdaBelief lr of the Platt scale k.'),
    evalModels: z
      .number()
      .int()
      .positive()
      .default(8)
      .describe('Fixed-seed random models of the KRR evaluation (the reference validates with 16).'),
    evalChunk: z
      .number()
      .int()
      .positive()
      .default(1000)
      .describe('Test images per feature pass of the KRR evaluation (bounds memory).'),
  })
  .strict();

export type RFADConfig = z.infer<typeof schema>;

interface RandomConvNet {
  weights: E.Tensor[];
  biases: E.Tensor[];
}

/** A random ConvNet of the reference's Conv2d_gaussian init: weights N(0, 2 / fan_in), biases N(0, 0.1^2). */
export function randomConvNet(gen: E.Generator, channels: number, config: RFADConfig): RandomConvNet {
  const weights: E.Tensor[] = [];
  const biases: E.Tensor[] = [];
  let cin = channels;
  for (let l = 0; l < config.depth; l++) {
    const std = Math.SQRT2 / Math.sqrt(cin * 9);
    weights.push(E.randn([config.width, cin, 3, 3], { generator: gen }).mul(std).keep());
    biases.push(E.randn([config.width], { generator: gen }).mul(0.1).keep());
    cin = config.width;
  }
  return { weights, biases };
}

function disposeNet(net: RandomConvNet): void {
  for (const t of [...net.weights, ...net.biases]) t.dispose();
}

/** Flattened features after the last pooling (the reference's chopped head). */
function features(net: RandomConvNet, x: E.Tensor): E.Tensor {
  let h = x;
  for (let l = 0; l < net.weights.length; l++) {
    // Layer by layer in its own scope: the conv and ReLU maps of a large real batch are freed at once (an
    // autograd graph keeps what it needs itself).
    const prev = h;
    h = E.tidy(() =>
      E.nn.avgPool2d(E.nn.conv2d(prev, net.weights[l], net.biases[l], { padding: 1 }).relu(), 2),
    );
    if (prev !== x) prev.dispose();
  }
  return h.flatten(1);
}

/** Concatenated features of all nets, scaled by 1 / sqrt(nets x features per net). */
export function randomFeatures(nets: RandomConvNet[], x: E.Tensor, chunk = Infinity): E.Tensor {
  const one = (xs: E.Tensor) =>
    E.cat(
      nets.map((n) => features(n, xs)),
      1,
    );
  const n = x.size(0);
  let f: E.Tensor;
  if (chunk >= n) f = one(x);
  else {
    const parts: E.Tensor[] = [];
    for (let s = 0; s < n; s += chunk) parts.push(E.tidy(() => one(x.narrow(0, s, Math.min(chunk, n - s)))));
    f = E.cat(parts, 0);
  }
  return f.div(Math.sqrt(f.size(1)));
}

/** The reference's kernel on random features: 2 F1 F2^T + 0.01. */
function featureKernel(f1: E.Tensor, f2: E.Tensor): E.Tensor {
  return f1.matmul(f2.t()).mul(2).add(0.01);
}

/** RFAD's loss of support features/targets against real features/labels, differentiable in all but the real side. */
export function rfadLoss(
  fs: E.Tensor,
  ys: E.Tensor,
  ft: E.Tensor,
  labels: E.Tensor,
  k: E.Tensor,
  config: Pick<RFADConfig, 'jit' | 'loss'>,
  classes: number,
): E.Tensor {
  const alpha = krrSolve(featureKernel(fs, fs), ys, config.jit);
  const preds = featureKernel(ft, fs).double().matmul(alpha);
  if (config.loss === 'mse')
    return preds
      .sub(centredOneHot(labels, classes, 'float64'))
      .square()
      .mean()
      .mul(0.5);
  return E.nn.crossEntropy(preds.mul(k.exp()), labels);
}

/** The Platt scale k (from 0), kept in the method's checkpointed state with its AdaBelief buffers. */
function plattScale(ctx: MethodContext): E.Tensor {
  let t = ctx.state.get('platt.k');
  if (!t) {
    t = E.zeros([], { dtype: 'float64' }).keep();
    ctx.state.set('platt.k', t);
  }
  return t;
}

function supportTargets(synthetic: SyntheticSet, labels: E.Tensor): E.Tensor {
  return synthetic.labelForm === 'targets'
    ? labels.double()
    : centredOneHot(labels, synthetic.numClasses, 'float64');
}

export const rfad: Method<RFADConfig> = registerMethod({
  name: 'rfad',
  family: 'performance matching',
  subFamily: 'kernel ridge regression',
  summary:
    'kernel ridge regression with a random-feature estimate of the ConvNet NNGP and Platt-scaled cross-entropy (Loo et al. 2022)',
  needs: 'a dataset; no training of networks',
  schema: schema as z.ZodType<RFADConfig>,
  defaults: {
    init: 'real',
    iterations: 1000,
    optimizer: { kind: 'adabelief', lr: 1e-3, eps: 1e-16 },
    optimizers: { labels: { kind: 'adabelief', lr: 1e-3, eps: 1e-16 } },
    labels: { learn: true },
  },
  labelGradients: true,
  labelSpace: 'targets',

  step(ctx: MethodContext, config: RFADConfig): StepResult {
    const { dataset, synthetic, gen, update } = ctx;
    const channels = dataset.imageShape[0];
    const nets = Array.from({ length: config.models }, () => randomConvNet(gen, channels, config));
    try {
      return E.tidy(() => {
        const n = dataset.train.images.size(0);
        const idx = E.randperm(n, { generator: gen }).narrow(0, 0, Math.min(config.batchReal, n));
        const xt = dataset.train.images.indexSelect(0, idx);
        const yt = dataset.train.labels.indexSelect(0, idx);
        const ft = E.noGrad(() => randomFeatures(nets, xt, config.realChunk));
        const { images, labels } = synthetic.decode();
        const k = plattScale(ctx).detach().requiresGrad_();
        const loss = rfadLoss(
          randomFeatures(nets, images),
          supportTargets(synthetic, labels),
          ft,
          yt,
          k,
          config,
          dataset.numClasses,
        );
        const value = loss.item();
        const grads = E.grad(loss, [...synthetic.learnable, k], { allowUnused: true });
        const kGrad = grads.pop();
        update(grads, value);
        // k's own AdaBelief (the reference's group with lr 1e-2), as torch_optimizer steps it.
        if (config.loss === 'platt' && kGrad && Number.isFinite(value))
          stepInState(
            ctx.state,
            'platt.',
            ['platt.k'],
            [kGrad],
            (p) => new E.AdaBelief(p, { lr: config.plattLr, eps: 1e-16 }),
          );
        return { loss: value };
      });
    } finally {
      nets.forEach(disposeNet);
    }
  },

  ownEvaluation(synthetic: SyntheticSet, dataset: Dataset, config: RFADConfig) {
    const gen = new E.Generator(0);
    const nets = Array.from({ length: config.evalModels }, () =>
      randomConvNet(gen, dataset.imageShape[0], config),
    );
    try {
      const accuracy = E.tidy(() => {
        const { images, labels } = synthetic.decode();
        const fs = randomFeatures(nets, images.detach());
        const kernel = (a: E.Tensor, b: E.Tensor) =>
          featureKernel(a === b ? fs : randomFeatures(nets, a), fs);
        return krrAccuracy(
          kernel,
          images.detach(),
          supportTargets(synthetic, labels.detach()),
          dataset.test,
          config.jit,
          config.evalChunk,
        );
      });
      return {
        name: `KRR with ${config.evalModels} random ConvNets' features (width ${config.width})`,
        accuracy,
      };
    } finally {
      nets.forEach(disposeNet);
    }
  },
});
