// The network the coreset baselines select with (as in the DC paper): a ConvNet
// trained on the full training set. Training also records forgetting events
// (Toneva et al. 2019): an example is forgotten when a minibatch finds it
// misclassified after an earlier minibatch had it right.
import * as E from '../engine/index.js';
import type { Dataset } from '../data/dataset.js';
import { createNetwork, type NetState, type Network } from '../models/index.js';

export interface FeatureNet {
  net: Network;
  state: NetState;
  /** Forgetting events per training example; Infinity for examples never learned. */
  forgetting: Float64Array;
}

export interface FeatureNetOptions {
  model?: string;
  epochs?: number;
  lr?: number;
  batchSize?: number;
  onEpoch?: (epoch: number, loss: number) => void;
}

export function trainFeatureNet(dataset: Dataset, gen: E.Generator, o: FeatureNetOptions = {}): FeatureNet {
  const net = createNetwork(o.model ?? 'ConvNet', dataset.imageShape, dataset.numClasses);
  const state = net.init(gen);
  const params = [...state.params.values()].map((p) => p.requiresGrad_());
  const opt = new E.SGD(params, { lr: o.lr ?? 0.01, momentum: 0.9, weightDecay: 5e-4 });
  const { images, labels } = dataset.train;
  const n = images.size(0);
  const batch = o.batchSize ?? 256;
  const lastCorrect = new Uint8Array(n);
  const everLearned = new Uint8Array(n);
  const events = new Float64Array(n);
  for (let epoch = 0; epoch < (o.epochs ?? 2); epoch++) {
    const order = E.tidy(() => E.randperm(n, { generator: gen }).keep());
    let lossSum = 0;
    let batches = 0;
    for (let start = 0; start < n; start += batch) {
      const [loss, idx, correct] = E.tidy(() => {
        const index = order.narrow(0, start, Math.min(batch, n - start));
        const logits = net.forward(state, images.indexSelect(0, index), { train: true });
        const y = labels.indexSelect(0, index);
        const l = E.nn.crossEntropy(logits, y);
        opt.step(E.grad(l, params));
        return [l.item(), index.toNumbers(), logits.argmax(1).eq(y).toNumbers()] as const;
      });
      idx.forEach((i, k) => {
        if (lastCorrect[i] && !correct[k]) events[i]++;
        lastCorrect[i] = correct[k];
        if (correct[k]) everLearned[i] = 1;
      });
      lossSum += loss;
      batches++;
    }
    order.dispose();
    o.onEpoch?.(epoch, lossSum / batches);
  }
  opt.disposeState();
  for (let i = 0; i < n; i++) if (!everLearned[i]) events[i] = Infinity;
  return { net, state, forgetting: events };
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
