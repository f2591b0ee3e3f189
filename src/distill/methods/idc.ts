// IDC (Kim et al. 2022, "Dataset Condensation via Efficient Synthetic-Data Parameterization";
// reference snu-mllab/Efficient-Dataset-Condensation condense.py) and IDC-I (the same algorithm
// without multi-formation: `-f 1`). Gradient matching against networks trained on real data:
// each outer iteration (the reference's `niter * 100 / inner_loop`)
//   net <- fresh ConvNet; SGD lr 0.01, momentum 0.9, weight decay 5e-4
//   clamp the stored images to the pixel range [0, 1] (in model-input space)
//   innerLoop times:
//     for each class c: x_r = batchReal real images of c; x_s = decoded images of c (at most
//       batchSynMax, a random subset); one shared draw of IDC's DiffAugment (color, then crop, then
//       cutout: every listed op here, where DSA picks one; augment/sequence.ts) on both;
//       L = sum over the conv weights of d(grad CE(x_s), grad CE(x_r)) (metric l1 / mse: raw sums;
//       cos: per output channel);
//       one update of the images (and labels) per class
//     train net on real data: batches of batchTrain random real images until nData were seen,
//       per-image augmentation (the strategy without cutout when CutMix is on), CutMix with p 0.5
// Multi-formation is the `idc` parameterization (param/multiformation.ts); this method works with any
// parameterization (it chains through decode()) and with learnable labels.
import { z } from 'zod';
import * as E from '../../engine/index.js';
import { OpSequence } from '../../augment/sequence.js';
import { createNetwork, type Network, type NetState } from '../../models/index.js';
import type { Method, MethodContext, StepResult } from '../method.js';
import { clampToPixels } from '../pixelclamp.js';
import { registerMethod } from '../registry.js';

const schema = z
  .object({
    innerLoop: z
      .number()
      .int()
      .positive()
      .default(100)
      .describe(
        'Matching steps (each over all classes) per outer iteration, each followed by a network update.',
      ),
    batchReal: z.number().int().positive().default(64).describe('Real images per class per matching step.'),
    batchSynMax: z
      .number()
      .int()
      .positive()
      .default(128)
      .describe('Decoded synthetic images per class per matching step, at most (a random subset beyond it).'),
    metric: z
      .enum(['l1', 'mse', 'cos'])
      .optional()
      .describe(
        'Gradient distance over the conv weights; default: l1 for MNIST/Fashion-MNIST, mse otherwise.',
      ),
    augment: z
      .string()
      .optional()
      .describe(
        "IDC's DiffAugment in the matching (flip, color, one of the other listed ops, cutout; augment/sequence.ts); default as the reference (see defaultAugment).",
      ),
    nData: z
      .number()
      .int()
      .positive()
      .default(500)
      .describe('Real images per network update (reference n_data) and its batch size.'),
    batchTrain: z
      .number()
      .int()
      .positive()
      .default(64)
      .describe('Batch size of the network updates on real data.'),
    lrNet: z.number().positive().default(0.01).describe('SGD learning rate of the network updates.'),
    momentumNet: z.number().min(0).max(1).default(0.9).describe('SGD momentum of the network updates.'),
    weightDecayNet: z.number().nonnegative().default(5e-4).describe('Weight decay of the network updates.'),
    cutmix: z
      .boolean()
      .optional()
      .describe(
        'CutMix (p 0.5, Beta(1, 1)) in the network updates; default as the reference (see defaultMixup).',
      ),
    clamp: z
      .boolean()
      .default(true)
      .describe(
        'Clamp the stored images to the pixel range at the start of every outer iteration (mean/std data).',
      ),
  })
  .strict();

export type IDCConfig = z.infer<typeof schema>;

const DIGITS = ['mnist'];
const SMALL = ['mnist', 'fashion-mnist'];

/** The reference's --reproduce choices (misc/reproduce.py): MNIST with multi-formation drops cutout and CutMix. */
function multiFormed(ctx: MethodContext): boolean {
  return ctx.synthetic.decodedPerClass > ctx.synthetic.ipc;
}
function defaultAugment(ctx: MethodContext): string {
  return DIGITS.includes(ctx.dataset.name) && multiFormed(ctx) ? 'color_crop' : 'color_crop_cutout';
}
function defaultMixup(ctx: MethodContext): boolean {
  return !(DIGITS.includes(ctx.dataset.name) && multiFormed(ctx));
}

/** sum over layers of d(gs, gr): l1 / mse raw sums, or cos per output channel (1 - cos, eps 1e-6). */
export function idcDistance(syn: E.Tensor[], real: E.Tensor[], metric: 'l1' | 'mse' | 'cos'): E.Tensor {
  const terms = syn.map((gs, i) => {
    const gr = real[i];
    if (metric === 'l1') return gs.sub(gr).abs().sum();
    if (metric === 'mse') return gs.sub(gr).square().sum();
    const a = gs.reshape([gs.size(0), -1]);
    const b = gr.reshape([gr.size(0), -1]);
    const cos = a
      .mul(b)
      .sum(1)
      .div(a.norm(2, 1).mul(b.norm(2, 1)).add(1e-6));
    return cos.neg().add(1).sum();
  });
  return terms.reduce((acc, t) => acc.add(t));
}

/** The parameters IDC matches: the conv weights (the reference skips biases, norms and the classifier). */
export function matchedParams(state: NetState): E.Tensor[] {
  return [...state.params.values()].filter((p) => p.ndim >= 3);
}

/** CutMix of a batch (utils.py cutmix + rand_bbox): the mixed images and the label weight `ratio`. */
export function cutmix(x: E.Tensor, gen: E.Generator): { x: E.Tensor; perm: E.Tensor; ratio: number } {
  const [n, , h, w] = x.shape;
  const [lam, cx, cy] = E.rand([3], { dtype: 'float64', generator: gen }).toNumbers();
  const perm = E.randperm(n, { generator: gen });
  const cutRat = Math.sqrt(1 - lam);
  const cutW = Math.floor(w * cutRat);
  const cutH = Math.floor(h * cutRat);
  const centerX = Math.floor(cx * w);
  const centerY = Math.floor(cy * h);
  const clip = (v: number, hi: number) => Math.min(Math.max(v, 0), hi);
  const x1 = clip(centerX - Math.floor(cutW / 2), w);
  const x2 = clip(centerX + Math.floor(cutW / 2), w);
  const y1 = clip(centerY - Math.floor(cutH / 2), h);
  const y2 = clip(centerY + Math.floor(cutH / 2), h);
  const mask = E.zeros([1, 1, h, w]);
  if (x2 > x1 && y2 > y1)
    mask
      .narrow(2, y1, y2 - y1)
      .narrow(3, x1, x2 - x1)
      .fill_(1);
  const mixed = x.mul(E.onesLike(mask).sub(mask)).add(x.indexSelect(0, perm).mul(mask));
  return { x: mixed, perm, ratio: 1 - ((x2 - x1) * (y2 - y1)) / (w * h) };
}

interface Outer {
  ctx: MethodContext;
  config: IDCConfig;
  net: Network;
  state: NetState;
  matchOps: OpSequence;
}

/** One matching step: per class, one gradient-matching loss and one update of the set. */
function matchClasses({ ctx, config, net, state, matchOps }: Outer): number {
  const { dataset, synthetic, gen } = ctx;
  const k = dataset.numClasses;
  const metric = config.metric ?? (SMALL.includes(dataset.name) ? 'l1' : 'mse');
  const batchReal = Math.min(config.batchReal, dataset.smallestClassSize);
  const params = matchedParams(state);
  let total = 0;
  for (let c = 0; c < k; c++) {
    total += E.tidy(() => {
      const real = dataset.gather(dataset.sampleIndices(batchReal, gen, [c]));
      const decoded = synthetic.decode();
      const n = synthetic.decodedPerClass;
      let rows = E.arange(c * n, (c + 1) * n);
      if (synthetic.decodedPerClass > config.batchSynMax)
        rows = rows.indexSelect(
          0,
          E.randperm(synthetic.decodedPerClass, { generator: gen }).narrow(0, 0, config.batchSynMax),
        );
      const [xr, xs] = matchOps.shared([real.images, decoded.images.indexSelect(0, rows)], gen);
      const lossOn = (x: E.Tensor, y: E.Tensor) =>
        E.nn.crossEntropy(net.forward(state, x, { train: true }), y);
      const gReal = E.grad(lossOn(xr, real.labels), params).map((g) => g.detach());
      const gSyn = E.grad(lossOn(xs, decoded.labels.indexSelect(0, rows)), params, { createGraph: true });
      const loss = idcDistance(gSyn, gReal, metric);
      const value = loss.item();
      ctx.update(E.grad(loss, synthetic.learnable, { allowUnused: true }), value);
      return value;
    });
  }
  return total / k;
}

/** The network's update on real data: batches of batchTrain random images until nData were seen. */
function trainOnReal(o: Outer, opt: E.SGD, trainOps: OpSequence, mix: boolean): void {
  const { dataset, gen } = o.ctx;
  const params = [...o.state.params.values()];
  const n = dataset.train.labels.size(0);
  const order = E.tidy(() =>
    E.randperm(n, { generator: gen })
      .narrow(0, 0, Math.min(n, Math.ceil(o.config.nData / o.config.batchTrain) * o.config.batchTrain))
      .keep(),
  );
  for (let seen = 0; seen < o.config.nData && seen < order.size(0); seen += o.config.batchTrain) {
    E.tidy(() => {
      // A shuffled draw without replacement within the update, as the reference's loader.
      const idx = order.narrow(0, seen, Math.min(o.config.batchTrain, order.size(0) - seen));
      let x = dataset.train.images.indexSelect(0, idx);
      const y = dataset.train.labels.indexSelect(0, idx);
      x = E.noGrad(() => trainOps.perImage(x, gen));
      let loss: E.Tensor;
      const [p] = E.rand([1], { dtype: 'float64', generator: gen }).toNumbers();
      if (mix && p < 0.5) {
        const m = cutmix(x, gen);
        const logits = o.net.forward(o.state, m.x, { train: true });
        loss = E.nn
          .crossEntropy(logits, y)
          .mul(m.ratio)
          .add(E.nn.crossEntropy(logits, y.indexSelect(0, m.perm)).mul(1 - m.ratio));
      } else loss = E.nn.crossEntropy(o.net.forward(o.state, x, { train: true }), y);
      opt.step(E.grad(loss, params));
    });
  }
  order.dispose();
}

function idcMethod(o: {
  name: string;
  parameterization: Record<string, unknown>;
  summary: string;
}): Method<IDCConfig> {
  return {
    name: o.name,
    family: 'parameter matching',
    subFamily: 'single step: gradient matching',
    summary: o.summary,
    needs: 'a dataset; second-order gradients; networks trained on real data during distillation',
    schema: schema as z.ZodType<IDCConfig>,
    defaults: {
      init: 'real',
      iterations: 2000,
      parameterization: o.parameterization,
      // The reference's MNIST image lr (1e-4 * ipc / 10 in [0, 1] pixels) in model-input space at IPC 10.
      optimizer: { kind: 'sgd', lr: 1e-3, momentum: 0.5 },
    },
    labelGradients: true,

    step(ctx: MethodContext, config: IDCConfig): StepResult {
      const { dataset, gen, model } = ctx;
      if (config.clamp) clampToPixels(dataset, ctx.synthetic);
      const net = createNetwork(model, dataset.imageShape, dataset.numClasses);
      const state = net.init(gen);
      const params = [...state.params.values()].map((p) => p.requiresGrad_());
      const opt = new E.SGD(params, {
        lr: config.lrNet,
        momentum: config.momentumNet,
        weightDecay: config.weightDecayNet,
      });
      const mix = config.cutmix ?? defaultMixup(ctx);
      const strategy = config.augment ?? defaultAugment(ctx);
      const outer: Outer = { ctx, config, net, state, matchOps: new OpSequence(strategy) };
      // The network's augmentation: the matching's ops, without cutout when CutMix is on.
      const trainOps = new OpSequence(strategy, mix ? ['cutout'] : []);
      let total = 0;
      try {
        for (let i = 0; i < config.innerLoop; i++) {
          total += matchClasses(outer);
          trainOnReal(outer, opt, trainOps, mix);
        }
      } finally {
        opt.disposeState();
        for (const t of [...state.params.values(), ...state.buffers.values()]) t.dispose();
      }
      return { loss: total / config.innerLoop };
    },
  };
}

export const idc = registerMethod(
  idcMethod({
    name: 'idc',
    parameterization: { kind: 'idc', factor: 2 },
    summary:
      'gradient matching on multi-formation images against networks trained on real data (Kim et al. 2022)',
  }),
);

export const idcI = registerMethod(
  idcMethod({
    name: 'idc-i',
    parameterization: { kind: 'pixels' },
    summary: 'IDC without multi-formation (IDC-I): the same algorithm on raw pixels (Kim et al. 2022)',
  }),
);
