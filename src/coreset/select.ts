// Coreset selection per class: random, herding, k-center greedy (on embeddings),
// forgetting events. Each returns training-set indices, ipc per class, in class order.
import * as E from '../engine/index.js';
import type { Dataset } from '../data/dataset.js';
import { embedTrain, type FeatureNet } from './features.js';

export const CORESET_METHODS = ['random', 'herding', 'kcenter', 'forgetting'] as const;
export type CoresetMethod = (typeof CORESET_METHODS)[number];

/**
 * Herding (Welling 2009), as in the DC author's pseudocode: greedily pick the
 * feature closest to (i+1) * mean - sum(selected so far).
 */
export function herding(features: E.Tensor, k: number): number[] {
  return E.noGrad(() =>
    E.tidy(() => {
      const mean = features.mean(0);
      const chosen: number[] = [];
      const available = new Uint8Array(features.size(0)).fill(1);
      let sum = E.zerosLike(mean);
      for (let i = 0; i < k; i++) {
        const target = mean.mul(i + 1).sub(sum);
        const dist = features.sub(target).norm(2, 1).toNumbers();
        let best = -1;
        for (let j = 0; j < dist.length; j++)
          if (available[j] && (best < 0 || dist[j] < dist[best])) best = j;
        chosen.push(best);
        available[best] = 0;
        sum = sum.add(features.select(0, best));
      }
      return chosen;
    }),
  );
}

/**
 * K-center greedy: start from the sample nearest the class mean, then repeatedly
 * add the sample farthest from its nearest chosen centre.
 */
export function kCenter(features: E.Tensor, k: number): number[] {
  return E.noGrad(() =>
    E.tidy(() => {
      const first = features.sub(features.mean(0)).norm(2, 1).argmin().item();
      const chosen = [first];
      let nearest = features.sub(features.select(0, first)).norm(2, 1);
      for (let i = 1; i < k; i++) {
        const next = nearest.argmax().item();
        chosen.push(next);
        nearest = nearest.minimum(features.sub(features.select(0, next)).norm(2, 1));
      }
      return chosen;
    }),
  );
}

/** The k examples forgotten most often (DeepCore: descending event count); ties broken by the seeded order. */
export function mostForgotten(counts: readonly number[], k: number, gen: E.Generator): number[] {
  const tieBreak = E.tidy(() => E.randperm(counts.length, { generator: gen }).toNumbers());
  const rank = new Float64Array(counts.length);
  tieBreak.forEach((pos, i) => (rank[pos] = i));
  return counts
    .map((_, i) => i)
    .sort((a, b) => counts[b] - counts[a] || rank[a] - rank[b])
    .slice(0, k);
}

/** Selects ipc training indices per class. `feature` is needed by all methods except random. */
export function selectCoreset(
  method: CoresetMethod,
  dataset: Dataset,
  ipc: number,
  gen: E.Generator,
  feature?: FeatureNet,
): number[] {
  if (method === 'random') return dataset.sampleIndices(ipc, gen);
  if (!feature) throw new Error(`coreset method '${method}' needs a trained feature network`);
  const out: number[] = [];
  for (let c = 0; c < dataset.numClasses; c++) {
    const members = dataset.classIndices(c);
    if (ipc > members.length)
      throw new Error(`class '${dataset.classes[c]}' has ${members.length} images, fewer than ipc ${ipc}`);
    let picked: number[];
    if (method === 'forgetting')
      picked = mostForgotten(
        members.map((i) => feature.forgetting[i]),
        ipc,
        gen,
      );
    else {
      const feats = embedTrain(feature, dataset, members);
      picked = method === 'herding' ? herding(feats, ipc) : kCenter(feats, ipc);
      feats.dispose();
    }
    for (const p of picked) out.push(members[p]);
  }
  return out;
}
