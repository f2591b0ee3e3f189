// The selection network the coreset baselines use, trained as DeepCore trains it (EarlyTrain:
// selection_epochs 40, SGD lr 0.1, momentum 0.9, Nesterov, weight decay 5e-4, batch 256, no
// augmentation, no schedule) on the full training set: herding and k-center select in its embedding
// (the DC paper's ConvNet features); forgetting counts, during that training, the events DeepCore's
// Forgetting.after_loss counts: an example the previous minibatch that held it classified correctly
// and this one does not (never-learned examples count 0). A network trained for 1-2 epochs instead
// ranks never-learned, atypical images first and lands far below random.
//
// Training takes minutes to an hour on a CPU (40 passes over the training set), so the result is
// cached per dataset, preprocessing, settings and seed (`selectionNetwork`).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as E from '../engine/index.js';
import { makeDirectory } from '../engine/files.js';
import type { Dataset } from '../data/dataset.js';
import { trainEpoch, type EpochOptions, type TrainingPrecision } from '../eval/index.js';
import {
  createNetwork,
  flattenParams,
  paramLayout,
  unflattenParams,
  type NetState,
  type Network,
} from '../models/index.js';
import { cacheDir, cacheName } from '../util/cache.js';

export interface FeatureNet {
  net: Network;
  state: NetState;
  /** Forgetting events per training example (DeepCore's count). */
  forgetting: Float64Array;
}

export interface SelectionTraining {
  model: string;
  epochs: number;
  lr: number;
  momentum: number;
  nesterov: boolean;
  weightDecay: number;
  batchSize: number;
  /** Arithmetic of the training steps (eval/protocol.ts); DeepCore trains in float32. */
  precision: TrainingPrecision;
}

/** DeepCore's selection settings (main.py: --selection_epochs 40, --selection_lr 0.1, ...). */
export const DEEPCORE_SELECTION: SelectionTraining = {
  model: 'ConvNet',
  epochs: 40,
  lr: 0.1,
  momentum: 0.9,
  nesterov: true,
  weightDecay: 5e-4,
  batchSize: 256,
  precision: 'float32',
};

export interface FeatureNetOptions extends Partial<SelectionTraining> {
  onEpoch?: (epoch: number, loss: number) => void;
}

/** DeepCore's forgetting events: per example, correct in its previous minibatch and wrong in this one. */
export class ForgettingCounter {
  readonly events: Float64Array;
  private readonly lastCorrect: Uint8Array;

  constructor(n: number) {
    this.events = new Float64Array(n);
    this.lastCorrect = new Uint8Array(n);
  }

  /** One minibatch: the examples' indices and whether the network (before its step) classified each correctly. */
  observe(indices: readonly number[], correct: readonly (number | boolean)[]): void {
    indices.forEach((i, k) => {
      const now = correct[k] ? 1 : 0;
      if (this.lastCorrect[i] && !now) this.events[i]++;
      this.lastCorrect[i] = now;
    });
  }
}

/** Trains the selection network (DeepCore's settings unless given) and counts forgetting events. */
export function trainFeatureNet(dataset: Dataset, gen: E.Generator, o: FeatureNetOptions = {}): FeatureNet {
  const s = { ...DEEPCORE_SELECTION, ...o };
  const net = createNetwork(s.model, dataset.imageShape, dataset.numClasses);
  const state = net.init(gen);
  const params = [...state.params.values()].map((p) => p.requiresGrad_());
  const opt = new E.SGD(params, {
    lr: s.lr,
    momentum: s.momentum,
    nesterov: s.nesterov,
    weightDecay: s.weightDecay,
  });
  const counter = new ForgettingCounter(dataset.train.images.size(0));
  const onBatch: EpochOptions['onBatch'] = ({ indices, labels, logits }) =>
    counter.observe(indices.toNumbers(), logits.argmax(1).eq(labels).toNumbers());
  for (let epoch = 0; epoch < s.epochs; epoch++) {
    const loss = trainEpoch(net, state, opt, dataset.train, {
      batchSize: s.batchSize,
      augment: null,
      gen,
      precision: s.precision,
      onBatch,
    });
    if (!Number.isFinite(loss))
      throw new Error(`the selection network diverged in epoch ${epoch} (loss ${loss}); lower its lr`);
    o.onEpoch?.(epoch, loss);
  }
  opt.disposeState();
  return { net, state, forgetting: counter.events };
}

/**
 * The selection network for `dataset` and `seed`, trained once and then read from the cache
 * (parameters, batch-norm buffers, forgetting counts). `onTrain` is called before a training that
 * is not cached yet (to announce it), `onEpoch` during it.
 */
export function selectionNetwork(
  dataset: Dataset,
  seed: number,
  o: FeatureNetOptions & { onTrain?: (settings: SelectionTraining) => void } = {},
): FeatureNet {
  const { onEpoch, onTrain, ...given } = o;
  const settings = { ...DEEPCORE_SELECTION, ...given };
  const key = {
    kind: 'selection-network',
    dataset: dataset.name,
    checksum: dataset.info.checksum,
    preprocessing: dataset.preprocessing.toSpec(),
    settings,
    seed,
  };
  const file = join(cacheDir(), 'selection', `${cacheName(key)}.safetensors`);
  const net = createNetwork(settings.model, dataset.imageShape, dataset.numClasses);
  const hit = existsSync(file) ? readCachedSelection(file, key, net) : null;
  if (hit) return hit;
  onTrain?.(settings);
  const trained = trainFeatureNet(dataset, new E.Generator(seed), { ...settings, onEpoch });
  makeDirectory(join(cacheDir(), 'selection'));
  E.tidy(() => {
    const tensors: Record<string, E.Tensor> = {
      params: flattenParams(trained.state),
      forgetting: E.tensor(trained.forgetting),
    };
    for (const [k, t] of trained.state.buffers) tensors[`buffer.${k}`] = t;
    E.saveSafetensors(file, tensors, { key: JSON.stringify(key) });
  });
  return trained;
}

/** A cached selection network, or null when the entry is for another key or unreadable (then recomputed). */
function readCachedSelection(file: string, key: unknown, net: Network): FeatureNet | null {
  try {
    const cached = E.loadSafetensors(file);
    if (cached.metadata.key !== JSON.stringify(key)) return null;
    const state = net.init(new E.Generator(0));
    const loaded = unflattenParams(cached.tensors.params, paramLayout(state));
    for (const [k, t] of loaded.params) state.params.set(k, t.clone());
    for (const k of state.buffers.keys()) {
      const b = cached.tensors[`buffer.${k}`];
      if (!b) return null;
      state.buffers.set(k, b.clone());
    }
    if (!cached.tensors.forgetting) return null;
    return { net, state, forgetting: Float64Array.from(cached.tensors.forgetting.toNumbers()) };
  } catch {
    // A truncated or foreign file: train again and overwrite it.
    return null;
  }
}

/** Embeddings (features before the classifier) of the given training images, batched, no grad. */
export function embedTrain(
  f: FeatureNet,
  dataset: Dataset,
  indices: readonly number[],
  batchSize = 1024,
): E.Tensor {
  return E.noGrad(() => {
    const parts: E.Tensor[] = [];
    for (let s = 0; s < indices.length; s += batchSize) {
      parts.push(
        E.tidy(() => {
          const idx = E.tensor(Int32Array.from(indices.slice(s, s + batchSize))).long();
          return f.net.embed(f.state, dataset.train.images.indexSelect(0, idx), { train: false });
        }),
      );
    }
    const out = E.cat(parts, 0);
    for (const p of parts) p.dispose();
    return out;
  });
}

/** Frees the network's tensors. */
export function disposeFeatureNet(f: FeatureNet): void {
  for (const t of [...f.state.params.values(), ...f.state.buffers.values()]) t.dispose();
}
