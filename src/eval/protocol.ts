// The evaluation protocol of the DC/DSA/DM/MTT code, as data: train a freshly
// initialised network on a (small) labelled set, then report its test accuracy
// after the last epoch (never the best epoch).
//
// Faithful to the reference evaluate_synset(): SGD momentum 0.9, weight decay
// 5e-4, batch 256, epochs 0..E inclusive (E + 1 passes), and after pass E/2 + 1
// the learning rate drops x0.1 with a fresh optimizer (momentum reset). With
// augmentation each training batch gets one DSA draw per call (one group,
// per-image parameters), as DiffAugment with seed -1 does.
//
// Precision: 'float32' (the default) or 'bfloat16' mixed precision, where each step's
// forward and backward run in bfloat16 channels-last on a copy of the float32 weights and
// the optimizer updates the float32 weights (as torch.autocast on a CPU). Networks with
// buffers (batch norm running statistics) always train in float32.
import * as E from '../engine/index.js';
import { DSA, defaultStrategy } from '../augment/index.js';
import type { Split } from '../data/dataset.js';
import { castInput, gradientLeaves, type Network, type NetState } from '../models/index.js';

export type TrainingPrecision = 'float32' | 'bfloat16';

export interface Protocol {
  epochs: number;
  lr: number;
  momentum: number;
  weightDecay: number;
  batchSize: number;
  /** DSA strategy for training batches, or 'none'. */
  augment: string;
  /** Arithmetic of the training steps (see the top of this file). */
  precision: TrainingPrecision;
}

export function defaultProtocol(
  datasetName: string,
  o: { augment?: boolean; epochs?: number; precision?: TrainingPrecision } = {},
): Protocol {
  const augment = o.augment ?? true;
  return {
    epochs: o.epochs ?? (augment ? 1000 : 300),
    lr: 0.01,
    momentum: 0.9,
    weightDecay: 5e-4,
    batchSize: 256,
    augment: augment ? defaultStrategy(datasetName) : 'none',
    precision: o.precision ?? 'float32',
  };
}

export interface TrainSet {
  images: E.Tensor;
  /** int64 class indices, or float soft labels [N, classes]. */
  labels: E.Tensor;
  /** A learned learning rate (MTT) replacing protocol.lr. */
  lr?: number;
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
  o: { train: boolean },
): { loss: E.Tensor; grads: E.Tensor[] } {
  const params = [...low.params.values()];
  const logits = net.forward(low, castInput(x, params[0].dtype), { train: o.train });
  const loss = E.nn.crossEntropy(logits.float(), y);
  return { loss, grads: E.grad(loss, params).map((g) => g.float().contiguous()) };
}

/** Loss and float32 gradients of one training batch, in float32 or bfloat16 mixed precision. */
function lossAndGradients(
  net: Network,
  state: NetState,
  x: E.Tensor,
  y: E.Tensor,
  mixed: boolean,
): { loss: E.Tensor; grads: E.Tensor[] } {
  if (mixed) return lowPrecisionGradients(net, gradientLeaves(state, 'bfloat16'), x, y, { train: true });
  const loss = E.nn.crossEntropy(net.forward(state, x, { train: true }), y);
  return { loss, grads: E.grad(loss, [...state.params.values()]) };
}

/**
 * One epoch of minibatch training on `train` (shuffled from `gen`; each batch
 * augmented with its own DSA draw when `dsa` is given). Returns the last batch's loss.
 */
export function trainEpoch(
  net: Network,
  state: NetState,
  opt: E.Optimizer,
  train: TrainSet,
  o: { batchSize: number; dsa: DSA | null; gen: E.Generator; precision?: TrainingPrecision },
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
      if (o.dsa) x = o.dsa.augmentBatch(x, o.gen);
      const { loss, grads } = lossAndGradients(net, state, x, y, mixed);
      opt.step(grads);
      return loss.item();
    });
  }
  order.dispose();
  return lastLoss;
}

/** Trains a fresh network (initialised from `gen`) on `train` and tests it. */
export function trainAndTest(
  net: Network,
  train: TrainSet,
  test: Split,
  protocol: Protocol,
  gen: E.Generator,
): TrainResult {
  const state = net.init(gen);
  const params = [...state.params.values()].map((p) => p.requiresGrad_());
  const dsa = protocol.augment === 'none' ? null : new DSA({ strategy: protocol.augment });
  const baseLr = train.lr ?? protocol.lr;
  const makeOptimizer = (lr: number) =>
    new E.SGD(params, { lr, momentum: protocol.momentum, weightDecay: protocol.weightDecay });
  let opt = makeOptimizer(baseLr);
  const decayAfter = Math.floor(protocol.epochs / 2) + 1;
  let lastLoss = NaN;
  for (let epoch = 0; epoch <= protocol.epochs; epoch++) {
    lastLoss = trainEpoch(net, state, opt, train, {
      batchSize: protocol.batchSize,
      dsa,
      gen,
      precision: protocol.precision,
    });
    if (!Number.isFinite(lastLoss)) {
      throw new Error(
        `evaluation training diverged at epoch ${epoch} (loss ${lastLoss}); lower the learning rate`,
      );
    }
    if (epoch === decayAfter) {
      opt.disposeState();
      opt = makeOptimizer(baseLr * 0.1);
    }
  }
  const testAccuracy = accuracy(net, state, test);
  opt.disposeState();
  for (const t of [...state.params.values(), ...state.buffers.values()]) t.dispose();
  return { testAccuracy, finalTrainLoss: lastLoss };
}
