// The evaluation protocol of the DC/DSA/DM/MTT code, as data: train a freshly
// initialised network on a (small) labelled set, then report its test accuracy
// after the last epoch (never the best epoch).
//
// Faithful to the reference evaluate_synset(): SGD momentum 0.9, weight decay
// 5e-4, batch 256, epochs 0..E inclusive (E + 1 passes), and after pass E/2 + 1
// the learning rate drops x0.1 with a fresh optimizer (momentum reset). With
// augmentation each training batch gets fresh draws: DSA (one group, per-image
// parameters, as DiffAugment with seed -1) or DC's augment() ('dc:crop_scale_rotate':
// one op per image), as `Protocol.augment` names it.
//
// Precision: 'float32' (the default) or 'bfloat16' mixed precision, where each step's
// forward and backward run in bfloat16 channels-last on a copy of the float32 weights and
// the optimizer updates the float32 weights (as torch.autocast on a CPU). Networks with
// buffers (batch norm running statistics) always train in float32.
import * as E from '../engine/index.js';
import { batchAugmenter, defaultStrategy, type BatchAugmenter } from '../augment/index.js';
import type { Split } from '../data/dataset.js';
import { castInput, gradientLeaves, type Network, type NetState } from '../models/index.js';
import { gsamGradients, type GSAMSettings } from './gsam.js';

export type TrainingPrecision = 'float32' | 'bfloat16';

export interface Protocol {
  epochs: number;
  lr: number;
  momentum: number;
  weightDecay: number;
  batchSize: number;
  /**
   * Augmentation of training batches: 'none', a DSA strategy ('color_crop_cutout_scale_rotate'),
   * or DC's evaluation augmentation ('dc:crop_scale_rotate', 'dc:crop_noise'; augment/dcaug.ts).
   */
  augment: string;
  /** Arithmetic of the training steps (see the top of this file). */
  precision: TrainingPrecision;
}

/**
 * How evaluation networks are augmented: true or 'dsa' = DSA with the dataset's strategy (DSA, DM,
 * MTT, TESLA), false = none, 'dc' = DC's rule (reference get_daparam: 'crop_noise' for a ConvNetBN
 * evaluation model, 'crop_scale_rotate' on MNIST, none otherwise), or an explicit Protocol.augment
 * string.
 */
export type AugmentChoice = boolean | string;

export function resolveAugment(choice: AugmentChoice, datasetName: string, evalModel?: string): string {
  if (choice === true || choice === 'dsa') return defaultStrategy(datasetName);
  if (choice === false) return 'none';
  if (choice !== 'dc') {
    batchAugmenter(choice); // validates the spec
    return choice;
  }
  if (evalModel === 'ConvNetBN') return 'dc:crop_noise';
  return datasetName === 'mnist' ? 'dc:crop_scale_rotate' : 'none';
}

/**
 * The reference protocol: epochs 1000 with augmentation and 300 without (DC/DSA/DM main.py), unless given.
 *
 * @example defaultProtocol('mnist', { augment: 'dc', evalModel: 'ConvNet' }) // DC's MNIST protocol
 */
export function defaultProtocol(
  datasetName: string,
  o: { augment?: AugmentChoice; epochs?: number; precision?: TrainingPrecision; evalModel?: string } = {},
): Protocol {
  const augment = resolveAugment(o.augment ?? true, datasetName, o.evalModel);
  return {
    epochs: o.epochs ?? (augment !== 'none' ? 1000 : 300),
    lr: 0.01,
    momentum: 0.9,
    weightDecay: 5e-4,
    batchSize: 256,
    augment,
    precision: o.precision ?? 'float32',
  };
}

export interface TrainSet {
  images: E.Tensor;
  /** int64 class indices, float soft labels [N, classes], or regression targets [N, classes] (`targets`). */
  labels: E.Tensor;
  /**
   * The labels are regression targets (learned KRR targets of KIP/RFAD/FRePo): train with the squared
   * error of FRePo's and RFAD's evaluation instead of cross-entropy (see `targetLoss`).
   */
  targets?: boolean;
  /** A learned learning rate (MTT) replacing protocol.lr. */
  lr?: number;
}

/**
 * How a set with learned regression targets is trained under the protocol. 'softmax' (the default):
 * soft cross-entropy on softmax(targets) (FRePo's 'softxent' at temperature 1), the protocol's
 * soft-label cross-entropy for learned labels. 'argmax': cross-entropy on each target's argmax class,
 * which discards what label learning found. 'mse': the squared error FRePo's eval.py (loss='mse') and
 * RFAD's eval_distilled_set (--loss_mode mse) train with under their own optimizers (Adam 3e-4 with a
 * cosine schedule in FRePo); under the shared SGD (lr 0.01, momentum 0.9) it scored below the others at
 * IPC 1 and diverged on a FRePo IPC 10 set. Measured on MNIST (docs/benchmarks.md): softmax >= argmax
 * (FRePo IPC 1 41.13 vs 38.40, IPC 10 92.79 vs 92.85; RFAD IPC 1 61.89 vs 40.43, IPC 10 96.66 vs 94.02).
 */
export type TargetLoss = 'mse' | 'softmax' | 'argmax';
export const TARGET_LOSSES: readonly TargetLoss[] = ['mse', 'softmax', 'argmax'];

/**
 * The training set for regression targets [N, classes] under `loss` (detached).
 *
 * @example targetTrainSet(images, targets, 'argmax') // { images, labels: int64 class indices }
 */
export function targetTrainSet(images: E.Tensor, targets: E.Tensor, loss: TargetLoss): TrainSet {
  return E.tidy(() => {
    const t = targets.detach();
    if (loss === 'mse') return { images: images.detach(), labels: t.clone(), targets: true };
    const labels = loss === 'softmax' ? E.nn.softmax(t, 1) : t.argmax(1);
    return { images: images.detach(), labels };
  });
}

/** What a stored set trains with: images, labels, and what a method learned beside them. */
export interface StoredSet {
  images: E.Tensor;
  /** int64 class indices or soft labels [N, classes]. */
  labels: E.Tensor;
  lr: number | null;
  /** Learned regression targets (KRR methods); `labels` is then their argmax. */
  labelTargets?: E.Tensor;
}

/**
 * A stored set (an artifact) as the protocol trains on it: `own` with what was learned (soft labels,
 * regression targets under `loss`, the learned lr), `hard` with each image's most likely class and the
 * protocol's lr. Tensors made here (not the set's own) are listed in `created` for the caller to dispose.
 *
 * @example const { own, created } = storedTrainSets(artifact); evaluateSet(dataset, own, o); created.forEach((t) => t.dispose());
 */
export function storedTrainSets(
  set: StoredSet,
  loss: TargetLoss = 'softmax',
): { own: TrainSet; hard: TrainSet; soft: boolean; created: E.Tensor[] } {
  const lr = set.lr ?? undefined;
  if (set.labelTargets) {
    const own = { ...targetTrainSet(set.images, set.labelTargets, loss), lr };
    const hard = targetTrainSet(set.images, set.labelTargets, 'argmax');
    return { own, hard, soft: true, created: [own.images, own.labels, hard.images, hard.labels] };
  }
  const own = { images: set.images, labels: set.labels, lr };
  if (set.labels.ndim !== 2)
    return { own, hard: { images: set.images, labels: set.labels }, soft: false, created: [] };
  const hardLabels = E.tidy(() => set.labels.argmax(1));
  return { own, hard: { images: set.images, labels: hardLabels }, soft: true, created: [hardLabels] };
}

export interface TrainResult {
  testAccuracy: number;
  finalTrainLoss: number;
}

/** Accuracy of a network on a split, in eval mode, batched. */
export function accuracy(
  net: Network,
  state: ReturnType<Network['init']>,
  split: Split,
  batchSize = 1024,
): number {
  return E.noGrad(() => {
    let correct = 0;
    const n = split.images.size(0);
    for (let start = 0; start < n; start += batchSize) {
      correct += E.tidy(() => {
        const len = Math.min(batchSize, n - start);
        const logits = net.forward(state, split.images.narrow(0, start, len), { train: false });
        return logits
          .argmax(1)
          .eq(split.labels.narrow(0, start, len))
          .sum()
          .item();
      });
    }
    return correct / n;
  });
}

/**
 * The squared error the KRR papers' evaluations train on: per example 0.5 x sum over classes of
 * (logit - target)^2, averaged over the batch (FRePo's mean_squared_loss). Its gradient in the logits,
 * (logit - target) / batch, has cross-entropy's scale, so the protocol's learning rate carries over.
 * (RFAD's --loss_mode mse is the same up to a constant factor 2 / classes.)
 */
export function targetLoss(logits: E.Tensor, targets: E.Tensor): E.Tensor {
  return E.nn.mseLoss(logits, targets, 'sum').mul(0.5 / logits.size(0));
}

/** The protocol's training loss: cross-entropy on class indices or probabilities, or targetLoss. */
export function trainingLoss(logits: E.Tensor, labels: E.Tensor, targets = false): E.Tensor {
  return targets ? targetLoss(logits, labels) : E.nn.crossEntropy(logits, labels);
}

/** Whether training steps on this network run in bfloat16 (buffers, i.e. batch norm, keep float32). */
export function usesMixedPrecision(precision: TrainingPrecision, state: NetState): boolean {
  return precision === 'bfloat16' && state.buffers.size === 0;
}

/**
 * Cross-entropy loss and gradients of a batch at a lower-precision copy of a network (gradientLeaves):
 * the input is cast to the copy's dtype and layout, the loss is taken on float32 logits, and the
 * gradients come back in float32, dense NCHW order. Mixed-precision training here, DC's real side.
 */
export function lowPrecisionGradients(
  net: Network,
  low: NetState,
  x: E.Tensor,
  y: E.Tensor,
  o: { train: boolean; targets?: boolean },
): { loss: E.Tensor; grads: E.Tensor[]; logits: E.Tensor } {
  const params = [...low.params.values()];
  const logits = net.forward(low, castInput(x, params[0].dtype), { train: o.train }).float();
  const loss = trainingLoss(logits, y, o.targets);
  return { loss, grads: E.grad(loss, params).map((g) => g.float().contiguous()), logits: logits.detach() };
}

/** Loss and float32 gradients of one training batch, in float32 or bfloat16 mixed precision. */
function lossAndGradients(
  net: Network,
  state: NetState,
  x: E.Tensor,
  y: E.Tensor,
  o: { mixed: boolean; targets?: boolean },
): { loss: E.Tensor; grads: E.Tensor[]; logits: E.Tensor } {
  if (o.mixed)
    return lowPrecisionGradients(net, gradientLeaves(state, 'bfloat16'), x, y, {
      train: true,
      targets: o.targets,
    });
  const logits = net.forward(state, x, { train: true });
  const loss = trainingLoss(logits, y, o.targets);
  return { loss, grads: E.grad(loss, [...state.params.values()]), logits: logits.detach() };
}

export interface EpochOptions {
  batchSize: number;
  /** Fresh draws per batch (batchAugmenter), or null. */
  augment: BatchAugmenter | null;
  gen: E.Generator;
  precision?: TrainingPrecision;
  /** After each optimizer step (e.g. to record the schedule). */
  onStep?: () => void;
  /**
   * Each batch's training-set indices, labels and training-mode logits (taken before the step, as
   * DeepCore's after_loss sees them: forgetting events).
   */
  onBatch?: (batch: { indices: E.Tensor; labels: E.Tensor; logits: E.Tensor }) => void;
  /** Step along GSAM's direction (two passes per batch; FTD's flat experts) instead of the plain gradient. */
  sharpness?: GSAMSettings;
}

/**
 * One epoch of minibatch training on `train` (shuffled from `gen`; each batch
 * augmented with its own draws when `augment` is given). Returns the last batch's loss.
 */
export function trainEpoch(
  net: Network,
  state: NetState,
  opt: E.Optimizer,
  train: TrainSet,
  o: EpochOptions,
): number {
  const mixed = usesMixedPrecision(o.precision ?? 'float32', state);
  const n = train.images.size(0);
  let lastLoss = NaN;
  const order = E.tidy(() => E.randperm(n, { generator: o.gen }).keep());
  for (let start = 0; start < n; start += o.batchSize) {
    lastLoss = E.tidy(() => {
      const idx = order.narrow(0, start, Math.min(o.batchSize, n - start));
      let x = train.images.indexSelect(0, idx);
      const y = train.labels.indexSelect(0, idx);
      if (o.augment) x = o.augment.augmentBatch(x, o.gen);
      const pass = () => lossAndGradients(net, state, x, y, { mixed, targets: train.targets });
      const { loss, grads, logits } = o.sharpness
        ? gsamGradients([...state.params.values()], pass, o.sharpness)
        : pass();
      o.onBatch?.({ indices: idx, labels: y, logits });
      opt.step(grads);
      o.onStep?.();
      return loss.item();
    });
  }
  order.dispose();
  return lastLoss;
}

/** An evaluation network's training loss became NaN or infinite. */
export class DivergedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DivergedError';
  }
}

/** Observes the protocol's training (tests compare the schedule with the reference loop's). */
export interface TrainHooks {
  /** After each SGD step, with the optimizer in use (a fresh one after the learning-rate drop). */
  onStep?(info: { epoch: number; optimizer: E.Optimizer }): void;
  /** After each epoch (0..E), for progress reports. */
  onEpoch?(epoch: number): void;
}

/**
 * Trains `state` (whose parameters it updates in place) on `train` under the protocol: epochs
 * 0..E, and after epoch floor(E/2) + 1 the learning rate x0.1 with a fresh optimizer (momentum
 * reset), as evaluate_synset. Returns the last batch's loss.
 */
export function trainNetwork(
  net: Network,
  state: NetState,
  train: TrainSet,
  protocol: Protocol,
  gen: E.Generator,
  hooks: TrainHooks = {},
): number {
  const params = [...state.params.values()].map((p) => p.requiresGrad_());
  const augment = batchAugmenter(protocol.augment);
  const baseLr = train.lr ?? protocol.lr;
  const makeOptimizer = (lr: number) =>
    new E.SGD(params, { lr, momentum: protocol.momentum, weightDecay: protocol.weightDecay });
  let opt = makeOptimizer(baseLr);
  const decayAfter = Math.floor(protocol.epochs / 2) + 1;
  let lastLoss = NaN;
  try {
    for (let epoch = 0; epoch <= protocol.epochs; epoch++) {
      lastLoss = trainEpoch(net, state, opt, train, {
        batchSize: protocol.batchSize,
        augment,
        gen,
        precision: protocol.precision,
        onStep: hooks.onStep && (() => hooks.onStep!({ epoch, optimizer: opt })),
      });
      hooks.onEpoch?.(epoch);
      if (!Number.isFinite(lastLoss)) {
        throw new DivergedError(
          `evaluation training diverged at epoch ${epoch} (loss ${lastLoss}); lower the learning rate`,
        );
      }
      if (epoch === decayAfter) {
        opt.disposeState();
        opt = makeOptimizer(baseLr * 0.1);
      }
    }
  } finally {
    opt.disposeState();
  }
  return lastLoss;
}

/**
 * Trains a fresh network (initialised from `gen`) on `train` under the protocol, hands the trained
 * state to `use` (e.g. to score a split) and releases it.
 *
 * @example const logits = trainAndUse(net, train, protocol, gen, (state) => predictLogits(net, state, images));
 */
export function trainAndUse<T>(
  net: Network,
  train: TrainSet,
  protocol: Protocol,
  gen: E.Generator,
  use: (state: NetState, finalTrainLoss: number) => T,
  hooks: TrainHooks = {},
): T {
  const state = net.init(gen);
  try {
    return use(state, trainNetwork(net, state, train, protocol, gen, hooks));
  } finally {
    for (const t of [...state.params.values(), ...state.buffers.values()]) t.dispose();
  }
}

/** Trains a fresh network (initialised from `gen`) on `train` and tests it (eval mode, final epoch). */
export function trainAndTest(
  net: Network,
  train: TrainSet,
  test: Split,
  protocol: Protocol,
  gen: E.Generator,
  hooks: TrainHooks = {},
): TrainResult {
  return trainAndUse(
    net,
    train,
    protocol,
    gen,
    (state, finalTrainLoss) => ({ testAccuracy: accuracy(net, state, test), finalTrainLoss }),
    hooks,
  );
}

/** The network's logits [N, classes] on `images` in eval mode (float32, no graph), batched. */
export function predictLogits(net: Network, state: NetState, images: E.Tensor, batchSize = 256): E.Tensor {
  return E.noGrad(() => {
    const parts: E.Tensor[] = [];
    for (let start = 0; start < images.size(0); start += batchSize)
      parts.push(
        E.tidy(() =>
          net
            .forward(state, images.narrow(0, start, Math.min(batchSize, images.size(0) - start)), {
              train: false,
            })
            .float()
            .keep(),
        ),
      );
    const out = E.cat(parts, 0);
    for (const p of parts) p.dispose();
    return out;
  });
}
