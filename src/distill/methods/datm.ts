// DATM, difficulty-aligned trajectory matching (Guo et al. 2024; reference NUS-HPC-AI-Lab/DATM
// distill/DATM.py): MTT's loss and student on GSAM experts (buffer_FTD.py), plus
//  - the start epoch drawn from [minStartEpoch, bound(it)), the bound growing from startWindow.from to
//    maxStartEpoch over startWindow.iterations iterations (its "sequential generation": easy, early
//    trajectories first; mtt.ts startEpochBound);
//  - initial images: per class, the first IPC real images in a random order that the first expert's
//    final parameters classify correctly (pix_init 'samples_predicted_correctly'); the others are skipped;
//  - soft labels: the mean logits over the experts (final epoch) that classify each image correctly,
//    learned as logits (SGD, momentum 0.9), read through a softmax by the student's soft cross-entropy
//    and by the evaluation;
//  - an iteration whose loss exceeds lossThreshold updates nothing.
// DATM.py keeps no moving average (its yamls' ema_decay is read by no code).
import * as E from '../../engine/index.js';
import type { Dataset } from '../../data/dataset.js';
import { createNetwork, unflattenParams, type Network, type ParamLayout } from '../../models/index.js';
import type { ExpertSet } from '../experts.js';
import type { MethodContext } from '../method.js';
import { registerMethod } from '../registry.js';
import type { SyntheticSet } from '../synthetic.js';
import { trajectoryMatching, type TrajectoryConfig } from './mtt.js';

const SCAN_BATCH = 256;

function logitsOf(net: Network, params: E.Tensor, layout: ParamLayout, images: E.Tensor): E.Tensor {
  return E.noGrad(() => net.forward(unflattenParams(params, layout), images, { train: false }));
}

/**
 * Per class, the first `ipc` indices of a random order of the class whose images the expert parameters
 * classify correctly, scanning again with the next expert where one pass finds too few (DATM.py:205-236).
 */
export function correctlyClassified(
  dataset: Dataset,
  ipc: number,
  net: Network,
  experts: ExpertSet,
  gen: E.Generator,
): number[] {
  const layout = experts.manifest.layout;
  const chosen: number[] = [];
  for (let c = 0; c < dataset.numClasses; c++) {
    const members = dataset.classIndices(c);
    const order = E.tidy(() => E.randperm(members.length, { generator: gen }).toNumbers()).map(
      (i) => members[i],
    );
    const kept = new Set<number>();
    for (let e = 0; e < experts.complete.length && kept.size < ipc; e++) {
      const params = experts.load(experts.complete[e], experts.epochs);
      for (let start = 0; start < order.length && kept.size < ipc; start += SCAN_BATCH) {
        const batch = order.slice(start, start + SCAN_BATCH);
        const predicted = E.tidy(() =>
          logitsOf(net, params, layout, dataset.gather(batch).images).argmax(1).toNumbers(),
        );
        for (let i = 0; i < batch.length && kept.size < ipc; i++) if (predicted[i] === c) kept.add(batch[i]);
      }
      params.dispose();
    }
    if (kept.size < ipc)
      throw new Error(
        `datm: the experts classify only ${kept.size} images of class ${c} correctly, fewer than ipc ${ipc}; use more or longer-trained experts`,
      );
    chosen.push(...kept);
  }
  return chosen;
}

/** Mean final-epoch logits over the experts that classify each image correctly (DATM.py:270-307). */
export function correctExpertLogits(
  images: E.Tensor,
  labels: E.Tensor,
  net: Network,
  experts: ExpertSet,
): E.Tensor {
  return E.tidy(() => {
    let sum = E.zeros([images.size(0), net.numClasses]);
    let count = E.zeros([images.size(0)]);
    for (const e of experts.complete) {
      const params = experts.load(e, experts.epochs);
      const logits = logitsOf(net, params, experts.manifest.layout, images);
      params.dispose();
      const correct = logits.argmax(1).eq(labels).float();
      sum = sum.add(logits.mul(correct.unsqueeze(1)));
      count = count.add(correct);
    }
    // Every image was chosen because an expert classifies it correctly; the clamp guards against a
    // borderline argmax that flips between the selection's batches and this one (never a NaN label).
    return sum.div(count.clamp(1).unsqueeze(1));
  });
}

function initFromCorrectSamples(ctx: MethodContext, _config: TrajectoryConfig, experts: ExpertSet): void {
  const { dataset, synthetic, gen, model } = ctx;
  if (synthetic.parameterization.kind !== 'pixels')
    throw new Error(
      `datm picks real images the experts classify correctly, which needs the pixels parameterization (got '${synthetic.parameterization.kind}')`,
    );
  const net = createNetwork(model, dataset.imageShape, dataset.numClasses);
  const chosen = correctlyClassified(dataset, synthetic.ipc, net, experts, gen);
  const logits = E.tidy(() => {
    const real = dataset.gather(chosen);
    const [stored] = synthetic.groups.images;
    E.noGrad(() => stored.copy_(real.images));
    return correctExpertLogits(real.images, real.labels, net, experts);
  });
  setSoftLabels(synthetic, logits);
}

/** Learned logits when the labels are learned (DATM's default), fixed probabilities otherwise. */
function setSoftLabels(synthetic: SyntheticSet, logits: E.Tensor): void {
  if (synthetic.labelForm === 'logits') synthetic.setLabels(logits.keep(), 'logits');
  else {
    synthetic.setLabels(E.tidy(() => E.nn.softmax(logits, 1)).keep(), 'soft');
    logits.dispose();
  }
}

export const datm = registerMethod(
  trajectoryMatching({
    name: 'datm',
    summary:
      'trajectory matching with a start-epoch window that grows with the iterations, images the experts classify correctly and learned soft labels (Guo et al. 2024)',
    flatExperts: true,
    initLabels: initFromCorrectSamples,
    // DATM's CIFAR-10 IPC 10 yaml where nothing dataset-specific is known; the presets carry the rest.
    defaults: {
      iterations: 10000,
      optimizer: { kind: 'sgd', lr: 100, momentum: 0.5 },
      labels: { learn: true },
      optimizers: { labels: { kind: 'sgd', lr: 2, momentum: 0.9 } },
      methodConfig: {
        lossThreshold: 1,
        synSteps: 80,
        expertEpochs: 2,
        maxStartEpoch: 20,
        startWindow: { from: 10, iterations: 1000 },
      },
    },
  }),
);
