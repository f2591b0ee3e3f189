// FRePo, neural Feature Regression with Pooling (Zhou, Nezhadarya, Ba 2022; reference yongchaoz/FRePo,
// lib/datadistillation/frepo.py): kernel ridge regression on the learned features of a pool of
// online-trained networks. Each iteration takes the current pool model's features phi (the flattened
// output before its last Dense layer, no gradient to the model) of a random real batch and of the
// synthetic set, and minimises
//   L = mean_t sum_c 0.5 (K_tp (K_pp + 1e-6 tr(K_pp)/n I)^-1 Y_p - Y_t)^2 + mean_p -min(top1 - top2, 1/C)(Y_p)
// with K = phi phi^T (first order: the regression, not the model, is differentiated). Labels are centred
// one-hot targets, learned by default (the second term keeps each learned label's margin); real targets
// one-hot - 1/C. Then the pool model either takes one Adam step (lr 3e-4, MSE against the current labels)
// on up to `onlineBatch` synthetic images sampled without replacement, or, past `maxOnlineUpdates` steps,
// is replaced by a fresh one; the next model is drawn at random. Pool: `poolSize` models whose ages start
// staggered ((max / size) x i). Models: the reference's 'conv' (width doubling per layer: 128, 256, 512;
// 3x3 conv with bias, ReLU, 2x2 average pool; padding 3 on one-channel inputs; Flax's lecun_normal
// initialisation, zero biases) with its default normalization 'identity' (the README's batch-norm
// variant is not implemented). Outer optimizer: LAMB lr 3e-4 with a cosine decay to 0.1 x lr over the run.
// The solve runs in float64 (kernels/krr.ts); the reference uses float32 with sym_pos.
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
    poolSize: z
      .number()
      .int()
      .positive()
      .default(10)
      .describe("Models in the pool (the reference's num_nn_state)."),
    maxOnlineUpdates: z
      .number()
      .int()
      .positive()
      .default(100)
      .describe('Online updates before a model is replaced (max_online_updates).'),
    width: z
      .number()
      .int()
      .positive()
      .default(128)
      .describe("First layer's channels; layer i has width x 2^i."),
    depth: z.number().int().positive().default(3).describe('Convolutional blocks of each network.'),
    batchReal: z
      .number()
      .int()
      .positive()
      .default(1024)
      .describe("Real images per iteration, drawn at random (the reference's batch size 1024)."),
    reg: z.number().nonnegative().default(1e-6).describe('Ridge relative to the mean diagonal of K_pp.'),
    onlineLr: z.number().positive().default(3e-4).describe("Adam lr of the pool models' online training."),
    onlineBatch: z
      .number()
      .int()
      .positive()
      .default(1000)
      .describe('Synthetic images per online step, sampled without replacement (all of them when fewer).'),
    evalChunk: z
      .number()
      .int()
      .positive()
      .default(1000)
      .describe('Test images per kernel block in the KRR evaluation.'),
  })
  .strict();

export type FRePoConfig = z.infer<typeof schema>;

type Params = E.Tensor[];

/** Shapes of the model's parameters: conv weights and biases layer by layer, then the Dense weight and bias. */
function parameterShapes(
  channels: number,
  hw: [number, number],
  classes: number,
  c: FRePoConfig,
): number[][] {
  const shapes: number[][] = [];
  let [cin, h, w] = [channels, ...hw];
  for (let i = 0; i < c.depth; i++) {
    const cout = c.width * 2 ** i;
    const pad = channels === 1 && i === 0 ? 3 : 1;
    shapes.push([cout, cin, 3, 3], [cout]);
    [cin, h, w] = [cout, Math.floor((h + 2 * pad - 2) / 2), Math.floor((w + 2 * pad - 2) / 2)];
  }
  shapes.push([classes, cin * h * w], [classes]);
  return shapes;
}

/** Flax's lecun_normal: a normal truncated at 2 std, rescaled to variance 1 / fan_in. */
function lecunNormal(shape: number[], gen: E.Generator): E.Tensor {
  const fanIn = shape.slice(1).reduce((a, b) => a * b, 1);
  return E.tidy(() => {
    let z = E.randn(shape, { generator: gen });
    // Redraw the entries outside [-2, 2] until none is left (rejection sampling, as a truncated normal).
    for (;;) {
      const out = z.abs().gt(2);
      if (out.sum().item() === 0) break;
      const m = out.float();
      z = z.mul(m.rsub(1)).add(E.randn(shape, { generator: gen }).mul(m));
    }
    return z.mul(Math.sqrt(1 / fanIn) / 0.8796256610342398);
  });
}

function initModel(dataset: Dataset, c: FRePoConfig, gen: E.Generator): Params {
  const [ch, h, w] = dataset.imageShape;
  return parameterShapes(ch, [h, w], dataset.numClasses, c).map((s) =>
    (s.length === 1 ? E.zeros(s) : lecunNormal(s, gen)).keep(),
  );
}

/** Features before the last Dense layer. */
export function frepoFeatures(params: Params, x: E.Tensor, depth: number): E.Tensor {
  let h = x;
  for (let i = 0; i < depth; i++) {
    const pad = x.size(1) === 1 && i === 0 ? 3 : 1;
    // Each layer in its own scope: the conv and ReLU maps are freed at once (a graph keeps what it needs).
    const prev = h;
    h = E.tidy(() =>
      E.nn.avgPool2d(E.nn.conv2d(prev, params[2 * i], params[2 * i + 1], { padding: pad }).relu(), 2),
    );
    if (prev !== x) prev.dispose();
  }
  return h.flatten(1);
}

function frepoOutput(params: Params, x: E.Tensor, depth: number): E.Tensor {
  return E.nn.linear(frepoFeatures(params, x, depth), params[2 * depth], params[2 * depth + 1]);
}

/** FRePo's loss from features: the KRR regression error plus the label-margin term (learned labels only). */
export function frepoLoss(
  featSyn: E.Tensor,
  ys: E.Tensor,
  featReal: E.Tensor,
  yt: E.Tensor,
  reg: number,
  learnedLabels: boolean,
): E.Tensor {
  const alpha = krrSolve(featSyn.matmul(featSyn.t()), ys, reg);
  const pred = featReal.double().matmul(featSyn.t().double()).matmul(alpha);
  const kernelLoss = pred.sub(yt.double()).square().sum(1).mul(0.5).mean();
  if (!learnedLabels) return kernelLoss;
  const k = ys.size(1);
  const top = ys.topk(2, 1).values;
  const margin = top
    .select(1, 0)
    .sub(top.select(1, 1))
    .clamp(undefined, 1 / k);
  return kernelLoss.add(margin.neg().mean().double());
}

// The pool lives in the method state (checkpointed): pool.<m>.<j> parameters, pool.<m>.opt.* the model's
// Adam state (statestep.ts), and pool.meta = [steps of each model..., index of the current model].
const key = (m: number, j: number) => `pool.${m}.${j}`;

function poolModel(state: Map<string, E.Tensor>, m: number): Params {
  const out: Params = [];
  for (let j = 0; state.has(key(m, j)); j++) out.push(state.get(key(m, j)) as E.Tensor);
  return out;
}

/** Puts a fresh model in slot m (its optimizer state goes with the old one). */
function setPoolModel(ctx: MethodContext, m: number, params: Params): void {
  for (const k of [...ctx.state.keys()])
    if (k.startsWith(`pool.${m}.`)) {
      ctx.state.get(k)?.dispose();
      ctx.state.delete(k);
    }
  params.forEach((p, j) => ctx.state.set(key(m, j), p.keep()));
}

function meta(ctx: MethodContext): number[] {
  return (ctx.state.get('pool.meta') as E.Tensor).toNumbers();
}

function setMeta(ctx: MethodContext, values: number[]): void {
  ctx.state.get('pool.meta')?.dispose();
  ctx.state.set('pool.meta', E.tensor(values, { dtype: 'float64' }).keep());
}

/** One Adam step (optax.adam: lr 3e-4, eps 1e-8) of model m on a synthetic sample, MSE loss. */
function trainOnline(ctx: MethodContext, config: FRePoConfig, m: number): void {
  const { synthetic, gen } = ctx;
  E.tidy(() => {
    const params = poolModel(ctx.state, m).map((p) => p.detach().requiresGrad_());
    const { images, labels } = E.noGrad(() => synthetic.decode());
    const n = images.size(0);
    const idx = E.randperm(n, { generator: gen }).narrow(0, 0, Math.min(n, config.onlineBatch));
    const y = targets(synthetic, labels.detach()).indexSelect(0, idx).float();
    const out = frepoOutput(params, images.detach().indexSelect(0, idx), config.depth);
    const grads = E.grad(out.sub(y).square().sum(1).mul(0.5).mean(), params);
    const names = params.map((_, j) => key(m, j));
    stepInState(ctx.state, `pool.${m}.`, names, grads, (p) => new E.Adam(p, { lr: config.onlineLr }));
  });
}

function targets(synthetic: SyntheticSet, labels: E.Tensor): E.Tensor {
  return synthetic.labelForm === 'targets' ? labels : centredOneHot(labels, synthetic.numClasses);
}

export const frepo: Method<FRePoConfig> = registerMethod({
  name: 'frepo',
  family: 'performance matching',
  subFamily: 'kernel ridge regression',
  summary: 'kernel ridge regression on the features of a pool of online-trained networks (Zhou et al. 2022)',
  needs: 'a dataset; trains a pool of networks on the synthetic set during distillation',
  schema: schema as z.ZodType<FRePoConfig>,
  defaults: {
    init: 'real',
    iterations: 2000,
    optimizer: { kind: 'lamb', lr: 3e-4, schedule: { kind: 'cosine', alpha: 0.1 } },
    optimizers: { labels: { kind: 'lamb', lr: 3e-4, schedule: { kind: 'cosine', alpha: 0.1 } } },
    labels: { learn: true },
  },
  labelGradients: true,
  labelSpace: 'targets',

  init(ctx: MethodContext, config: FRePoConfig): void {
    const steps: number[] = [];
    for (let m = 0; m < config.poolSize; m++) {
      setPoolModel(ctx, m, initModel(ctx.dataset, config, ctx.gen));
      steps.push(Math.floor(config.maxOnlineUpdates / config.poolSize) * m);
    }
    const first = E.randint(0, config.poolSize, [1], { generator: ctx.gen }).item();
    setMeta(ctx, [...steps, first]);
  },

  step(ctx: MethodContext, config: FRePoConfig): StepResult {
    const { dataset, synthetic, gen, update } = ctx;
    const state = meta(ctx);
    const current = state[config.poolSize];
    const value = E.tidy(() => {
      const params = poolModel(ctx.state, current);
      const n = dataset.train.images.size(0);
      const idx = E.randperm(n, { generator: gen }).narrow(0, 0, Math.min(config.batchReal, n));
      const featReal = E.noGrad(() =>
        frepoFeatures(params, dataset.train.images.indexSelect(0, idx), config.depth),
      );
      const yt = centredOneHot(dataset.train.labels.indexSelect(0, idx), dataset.numClasses);
      const { images, labels } = synthetic.decode();
      const learned = synthetic.labelForm === 'targets';
      const loss = frepoLoss(
        frepoFeatures(params, images, config.depth),
        targets(synthetic, labels),
        featReal,
        yt,
        config.reg,
        learned,
      );
      const v = loss.item();
      update(E.grad(loss, synthetic.learnable, { allowUnused: true }), v);
      return v;
    });
    // The pool: retire the model past its online budget, or train it one step; then draw the next one.
    if (state[current] > config.maxOnlineUpdates) {
      setPoolModel(ctx, current, initModel(dataset, config, gen));
      state[current] = 0;
    } else {
      trainOnline(ctx, config, current);
      state[current] += 1;
    }
    state[config.poolSize] = E.randint(0, config.poolSize, [1], { generator: gen }).item();
    setMeta(ctx, state);
    return { loss: value };
  },

  ownEvaluation(
    synthetic: SyntheticSet,
    dataset: Dataset,
    config: FRePoConfig,
    state: Map<string, E.Tensor>,
  ) {
    // KRR on the features of the pool's current model (the reference's eval_on_proto_krr uses a pool state).
    const current = (state.get('pool.meta') as E.Tensor).toNumbers()[config.poolSize];
    const params = poolModel(state, current);
    const accuracy = E.tidy(() => {
      const { images, labels } = synthetic.decode();
      const kernel = (a: E.Tensor, b: E.Tensor) => {
        const fa = frepoFeatures(params, a, config.depth);
        return fa.matmul((a === b ? fa : frepoFeatures(params, b, config.depth)).t());
      };
      return krrAccuracy(
        kernel,
        images.detach(),
        targets(synthetic, labels.detach()).double(),
        dataset.test,
        config.reg,
        config.evalChunk,
      );
    });
    return { name: `KRR on the features of the pool's current model (width ${config.width})`, accuracy };
  },
});
