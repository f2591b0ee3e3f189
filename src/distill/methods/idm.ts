// IDM, improved distribution matching (Zhao et al. 2023; reference uitrbn/IDM IDM_cifar10.py with
// dc_utils.py): DM's per-class mean-embedding matching with
//  - partition and expand: the set is stored in IDC's multi-formation (factor 2: each stored image holds
//    four quadrants, each upsampled bilinearly; initialised from four real images shrunk bilinearly), the
//    default parameterization here; the real side is not partitioned; one Siamese DSA draw per class;
//  - a queue of semi-trained networks instead of a fresh one: it starts with `initialNets`, gains
//    `pushCount` fresh networks every `pushEvery` iterations (from iteration 0) and drops the oldest
//    beyond `queueSize`; one is drawn per iteration for the matching; afterwards `trainNets` networks
//    drawn from the queue take `trainSteps` SGD steps (lr 0.01, momentum 0.9, weight decay 5e-4) of
//    cross-entropy on random real batches of all classes, without augmentation;
//  - class-aware regularisation: + ceWeight * acc * CE(net(syn_c), c), acc the drawn network's running
//    training accuracy in percent (0-100) since its meter was last reset (every `accuracyReset`
//    iterations, as the reference's evaluation block resets it; 0 for a network not trained since);
//  - one image update per class (the reference steps its SGD optimizer inside the class loop).
// The queue (flat parameters, their SGD momentum, accuracy meters, FIFO order) lives in the method
// state and is checkpointed.
import { z } from 'zod';
import * as E from '../../engine/index.js';
import { DSA, type SegmentParams, methodDsa } from '../../augment/index.js';
import {
  createNetwork,
  flattenParams,
  paramLayout,
  unflattenParams,
  type Network,
  type NetState,
  type ParamLayout,
} from '../../models/index.js';
import type { Method, MethodContext, StepResult } from '../method.js';
import { registerMethod } from '../registry.js';
import { stepInState } from '../statestep.js';

const schema = z
  .object({
    batchReal: z.number().int().positive().default(256).describe('Real images per class per image update.'),
    ceWeight: z
      .number()
      .nonnegative()
      .default(0.5)
      .describe("Class-aware regularisation weight, times the network's training accuracy in percent."),
    queueSize: z.number().int().positive().default(100).describe('Most networks in the queue (net_num).'),
    initialNets: z.number().int().positive().default(3).describe('Networks in the queue at the start.'),
    pushEvery: z
      .number()
      .int()
      .positive()
      .default(30)
      .describe('A fresh network joins the queue every this many iterations (net_generate_interval).'),
    pushCount: z.number().int().positive().default(1).describe('Networks pushed each time (net_push_num).'),
    trainNets: z.number().int().nonnegative().default(2).describe('Queue networks trained per iteration.'),
    trainSteps: z.number().int().nonnegative().default(10).describe('SGD steps of each (model_train_steps).'),
    trainBatch: z.number().int().positive().default(256).describe('Real images per step (trained_bs).'),
    lrNet: z
      .number()
      .positive()
      .default(0.01)
      .describe('SGD lr of the queue networks (momentum 0.9, wd 5e-4).'),
    accuracyReset: z
      .number()
      .int()
      .positive()
      .default(100)
      .describe(
        "Iterations between resets of the networks' accuracy meters (the reference's eval_interval).",
      ),
    dsa: z.boolean().default(true).describe('One Siamese DSA draw per class on both sides.'),
    dsaStrategy: z
      .string()
      .optional()
      .describe("DSA strategy; default: the dataset's (no flips for digits)."),
  })
  .strict();

export type IDMConfig = z.infer<typeof schema>;

const layouts = new Map<string, ParamLayout>();
/** The flat-parameter layout of `model` (drawn with a private generator: the run's stream is untouched). */
function layoutOf(net: Network): ParamLayout {
  // The classifier's shape depends on the input shape and the classes, not only on the spec.
  const key = `${net.spec}|${net.inputShape.join('x')}|${net.numClasses}`;
  const known = layouts.get(key);
  if (known) return known;
  const state = net.init(new E.Generator(0));
  const layout = paramLayout(state);
  for (const t of state.params.values()) t.dispose();
  layouts.set(key, layout);
  return layout;
}

const netKey = (id: number) => `idm.net.${id}`;
const accKey = (id: number) => `idm.net.${id}.acc`;

function queue(state: Map<string, E.Tensor>): number[] {
  return state.get('idm.queue')?.toNumbers() ?? [];
}

function setState(state: Map<string, E.Tensor>, key: string, value: E.Tensor): void {
  state.get(key)?.dispose();
  state.set(key, value.keep());
}

/** Adds a freshly initialised network at the back of the queue, dropping the oldest beyond queueSize. */
function push(ctx: MethodContext, net: Network, config: IDMConfig): void {
  const ids = queue(ctx.state);
  const id = ctx.state.get('idm.nextId')?.item() ?? 0;
  const drawn = net.init(ctx.gen);
  setState(
    ctx.state,
    netKey(id),
    E.tidy(() => flattenParams(drawn)),
  );
  for (const t of drawn.params.values()) t.dispose();
  setState(ctx.state, accKey(id), E.zeros([2], { dtype: 'float64' }));
  ids.push(id);
  while (ids.length > config.queueSize) {
    const old = ids.shift() as number;
    for (const k of [...ctx.state.keys()])
      if (k === netKey(old) || k.startsWith(`${netKey(old)}.`)) {
        ctx.state.get(k)?.dispose();
        ctx.state.delete(k);
      }
  }
  setState(ctx.state, 'idm.queue', E.tensor(ids, { dtype: 'float64' }));
  setState(ctx.state, 'idm.nextId', E.tensor(id + 1, { shape: [], dtype: 'float64' }));
}

/** The network's running training accuracy in percent since its meter was reset (0 if untrained since). */
function accuracyPercent(ctx: MethodContext, id: number): number {
  const [correct, total] = (ctx.state.get(accKey(id)) as E.Tensor).toNumbers();
  return total > 0 ? (100 * correct) / total : 0;
}

/** `trainSteps` SGD steps of cross-entropy on random real batches of all classes (no augmentation). */
function trainQueueNet(ctx: MethodContext, net: Network, id: number, config: IDMConfig): void {
  const { dataset, gen, state } = ctx;
  const layout = layoutOf(net);
  const n = dataset.train.images.size(0);
  for (let s = 0; s < config.trainSteps; s++) {
    E.tidy(() => {
      const idx = E.randperm(n, { generator: gen }).narrow(0, 0, Math.min(config.trainBatch, n));
      const x = dataset.train.images.indexSelect(0, idx);
      const y = dataset.train.labels.indexSelect(0, idx);
      const flat = (state.get(netKey(id)) as E.Tensor).detach().requiresGrad_();
      const logits = net.forward(unflattenParams(flat, layout), x, { train: true });
      const [g] = E.grad(E.nn.crossEntropy(logits, y), [flat]);
      const correct = logits.detach().argmax(1).eq(y).float().sum().item();
      const meter = (state.get(accKey(id)) as E.Tensor).toNumbers();
      setState(state, accKey(id), E.tensor([meter[0] + correct, meter[1] + y.size(0)], { dtype: 'float64' }));
      stepInState(
        state,
        `${netKey(id)}.`,
        [netKey(id)],
        [g],
        (p) => new E.SGD(p, { lr: config.lrNet, momentum: 0.9, weightDecay: 5e-4 }),
      );
    });
  }
}

export interface IDMClassProblem {
  net: Network;
  params: NetState;
  /** Real images of the class (not partitioned). */
  real: E.Tensor;
  /** The class's decoded synthetic images (differentiable). */
  syn: E.Tensor;
  label: number;
  /** ceWeight x the network's accuracy in percent (0: no class-aware term). */
  weight: number;
  /** One Siamese DSA draw shared by both sides, or null. */
  dsa: DSA | null;
  draw: SegmentParams[] | null;
}

/** One class's IDM loss: ||mean e(real) - mean e(syn)||^2 + weight CE(net(syn), label), differentiable in syn. */
export function idmClassLoss(p: IDMClassProblem): E.Tensor {
  const aug = (x: E.Tensor) => (p.dsa && p.draw ? p.dsa.apply(x, p.draw, [x.size(0)]) : x);
  const realMean = E.noGrad(() => p.net.embed(p.params, aug(p.real), { train: false }).mean(0));
  const syn = aug(p.syn);
  const loss = realMean
    .sub(p.net.embed(p.params, syn, { train: false }).mean(0))
    .square()
    .sum();
  if (p.weight <= 0) return loss;
  const labels = E.full([syn.size(0)], p.label, { dtype: 'int64' });
  return loss.add(E.nn.crossEntropy(p.net.forward(p.params, syn, { train: false }), labels).mul(p.weight));
}

export const idm: Method<IDMConfig> = registerMethod({
  name: 'idm',
  family: 'distribution matching',
  subFamily: 'feature mean matching',
  summary:
    'DM with partition-and-expand images, a queue of networks trained on real data and class-aware regularisation (Zhao et al. 2023)',
  needs: 'a dataset; trains a queue of networks on real data during distillation',
  schema: schema as z.ZodType<IDMConfig>,
  defaults: {
    init: 'real',
    iterations: 20000,
    optimizer: { kind: 'sgd', lr: 0.2, momentum: 0.5 },
    parameterization: { kind: 'idc', factor: 2, initResize: 'bilinear' },
  },
  labelGradients: false,

  init(ctx: MethodContext, config: IDMConfig): void {
    const net = createNetwork(ctx.model, ctx.dataset.imageShape, ctx.dataset.numClasses);
    if (net.hasBatchNorm)
      throw new Error(
        `idm: batch-norm models are not supported by the reference (got ${ctx.model}); use ConvNet`,
      );
    for (let i = 0; i < config.initialNets; i++) push(ctx, net, config);
  },

  step(ctx: MethodContext, config: IDMConfig, iteration: number): StepResult {
    const { dataset, synthetic, gen, state } = ctx;
    const k = dataset.numClasses;
    const net = createNetwork(ctx.model, dataset.imageShape, k);
    if (iteration > 0 && iteration % config.accuracyReset === 0)
      for (const id of queue(state)) setState(state, accKey(id), E.zeros([2], { dtype: 'float64' }));
    if (iteration % config.pushEvery === 0) for (let i = 0; i < config.pushCount; i++) push(ctx, net, config);
    const ids = queue(state);
    const id = ids[E.tidy(() => E.randint(0, ids.length, [1], { generator: gen }).item())];
    const weight = config.ceWeight * accuracyPercent(ctx, id);
    const dsa = methodDsa(config, dataset.name);
    const batchReal = Math.min(config.batchReal, dataset.smallestClassSize);
    let total = 0;
    for (let c = 0; c < k; c++) {
      total += E.tidy(() => {
        const loss = idmClassLoss({
          net,
          params: unflattenParams((state.get(netKey(id)) as E.Tensor).detach(), layoutOf(net)),
          // The real batch is drawn before the DSA draw (property order), as the reference draws them.
          real: dataset.gather(dataset.sampleIndices(batchReal, gen, [c])).images,
          syn: synthetic.classRows(synthetic.decode().images, c),
          label: c,
          weight,
          dsa,
          draw: dsa?.sample(1, gen) ?? null,
        });
        const value = loss.item();
        ctx.update(E.grad(loss, synthetic.learnable, { allowUnused: true }), value);
        return value;
      });
    }
    // Then trainNets networks of the queue (drawn without replacement) train on real data.
    const order = E.tidy(() => E.randperm(ids.length, { generator: gen }).toNumbers());
    for (const j of order.slice(0, Math.min(config.trainNets, ids.length)))
      trainQueueNet(ctx, net, ids[j], config);
    return { loss: total / k };
  },
});
