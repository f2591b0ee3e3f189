// Membership privacy of small training sets, after "Privacy for free" (Dong et al. 2022) and its
// critique "No free lunch in privacy for free" (Carlini et al. 2022): a pool of real training images is
// split into the target's members and non-members; the target pipeline sees the members only (a model
// trained on the members themselves, on a random member subset of the distilled set's size, or on a set
// distilled from the members); each target is attacked over the whole pool with
//   - the loss-threshold attack (Yeom et al. 2018): lower loss, more likely a member;
//   - offline LiRA (Carlini et al. 2022, tensorflow/privacy research/mi_lira_2021): shadow pipelines
//     on halves of the pool (complementary pairs, class-balanced), each example OUT of half of them; the target's
//     logit-scaled confidence phi = log p_y - log sum_{c != y} p_c against the median of the OUT shadows'
//     phi, over one global standard deviation (their fixed-variance variant, the better one with few
//     shadows); one-sided as in the paper's Algorithm 1 (larger means member), where the code's plot.py
//     ranks by the two-sided Gaussian density.
// Reported: ROC AUC and TPR at 1 % and 0.1 % FPR (the largest ROC point below that FPR, as LiRA's
// code), next to the target's test accuracy: a model that leaks less but learns nothing is no win.
import * as E from '../engine/index.js';
import { trainSubset, type Dataset } from '../data/dataset.js';
import { createNetwork } from '../models/index.js';
import {
  accuracy,
  defaultProtocol,
  predictLogits,
  storedTrainSets,
  trainAndUse,
  type Protocol,
  type StoredSet,
  type TrainingPrecision,
} from '../eval/index.js';
import { median, rocAuc, rocCurve, tprBelow, type RocPoint } from '../util/stats.js';
import { AppError, buildSet, checkSources, disposeSet } from './sets.js';

export interface PrivacyOptions {
  /** 'real' (the members themselves), 'random', 'herding', or a method name (distilled from the members). */
  targets: string[];
  /** Real training images per class in the pool; half of each class are the target's members. */
  poolPerClass: number;
  /** Images per class of the random and distilled sets. */
  ipc: number;
  /** Shadow pipelines per target kind (at least 2). */
  shadows: number;
  /** Epochs of every network the attack looks at (trains epochs 0..E). */
  epochs: number;
  /** Augmentation of that training (default: the dataset's DSA); false for none. */
  augment?: boolean;
  model?: string;
  precision?: TrainingPrecision;
  seed: number;
  preset?: 'quick' | 'paper' | null;
  overrides?: Record<string, unknown>;
  workDir: string;
  log?: (line: string) => void;
}

export interface AttackResult {
  auc: number;
  /** True-positive rates at false-positive rates below 1 % and 0.1 %. */
  tprAt1: number;
  tprAt01: number;
  /** The ROC curve, thinned to at most ~200 points (log-spaced in FPR). */
  roc: RocPoint[];
}

export interface TargetResult {
  testAccuracy: number;
  /** Images the target network trained on. */
  trainImages: number;
  attacks: { loss: AttackResult; lira: AttackResult };
}

export interface PrivacyResult {
  dataset: string;
  ipc: number;
  poolPerClass: number;
  members: number;
  nonMembers: number;
  shadows: number;
  model: string;
  protocol: Protocol;
  targets: Record<string, TargetResult>;
}

/**
 * The ROC curve for storage and plots: its upper envelope (at each FPR the highest TPR, after the
 * (0, 0) start), then points kept log-spaced in FPR (about 200 at most), the last one always.
 */
export function thinRoc(roc: readonly RocPoint[]): RocPoint[] {
  const upper = roc.filter((p, i) => i === 0 || i === roc.length - 1 || roc[i + 1].fpr !== p.fpr);
  if (upper.length <= 200) return upper;
  const out: RocPoint[] = [];
  let next = 0;
  upper.forEach((p, i) => {
    if (p.fpr >= next || i === upper.length - 1) {
      out.push(p);
      next = Math.max(p.fpr * 1.05, p.fpr + 1e-4);
    }
  });
  return out;
}

/** AUC and low-FPR TPRs of `scores` (higher = member) over the pool, members marked in `isMember`. */
export function attackResult(scores: readonly number[], isMember: readonly boolean[]): AttackResult {
  const pos = scores.filter((_, i) => isMember[i]);
  const neg = scores.filter((_, i) => !isMember[i]);
  const roc = rocCurve(pos, neg);
  return {
    auc: rocAuc(pos, neg),
    tprAt1: tprBelow(roc, 0.01),
    tprAt01: tprBelow(roc, 0.001),
    roc: thinRoc(roc),
  };
}

/** Per pool example: phi = log p_y - log sum_{c != y} p_c (stable) and the cross-entropy loss. */
export function confidences(logits: E.Tensor, labels: E.Tensor): { phi: number[]; loss: number[] } {
  return E.tidy(() => {
    const logp = E.nn.logSoftmax(logits.double(), 1);
    const y = labels.long().unsqueeze(1);
    const own = logp.gather(1, y).squeeze(1);
    // log sum over the other classes: logsumexp with the true class masked to -inf.
    const mask = E.zerosLike(logp).scatter(1, y, -Infinity);
    const others = logp.add(mask).logsumexp(1);
    return { phi: own.sub(others).toNumbers(), loss: own.neg().toNumbers() };
  });
}

/**
 * Offline LiRA with a global variance: (phi_target - median of OUT phi) / std of all OUT phi.
 * `shadowPhi[k][j]` is shadow k's phi of example j, `shadowIn[k][j]` whether j trained shadow k.
 */
export function liraOffline(
  targetPhi: readonly number[],
  shadowPhi: number[][],
  shadowIn: boolean[][],
): number[] {
  const outs = targetPhi.map((_, j) => shadowPhi.flatMap((phi, k) => (shadowIn[k][j] ? [] : [phi[j]])));
  const missing = outs.findIndex((o) => o.length === 0);
  if (missing >= 0) throw new AppError(`LiRA: example ${missing} is in every shadow's training data`);
  const all = outs.flat();
  const mean = all.reduce((s, v) => s + v, 0) / all.length;
  const std = Math.sqrt(all.reduce((s, v) => s + (v - mean) ** 2, 0) / all.length);
  return targetPhi.map((phi, j) => (phi - median(outs[j])!) / (std + 1e-30));
}

/** The pool: `perClass` training indices of each class, drawn from `seed`. */
function drawPool(dataset: Dataset, perClass: number, seed: number): number[] {
  if (!Number.isInteger(perClass) || perClass < 2 || perClass > dataset.smallestClassSize)
    throw new AppError(
      `--pool-per-class must be between 2 and ${dataset.smallestClassSize} (the smallest class), got ${perClass}`,
    );
  return dataset.sampleIndices(perClass, new E.Generator(seed));
}

/** A random half (rounded down) of each class's positions in `labels`. */
function classHalves(labels: readonly number[], gen: E.Generator): boolean[] {
  const half = new Array<boolean>(labels.length).fill(false);
  for (const c of [...new Set(labels)].sort((a, b) => a - b)) {
    const mine = labels.flatMap((v, j) => (v === c ? [j] : []));
    const order = E.tidy(() => E.randperm(mine.length, { generator: gen }).toNumbers());
    for (const k of order.slice(0, Math.floor(mine.length / 2))) half[mine[k]] = true;
  }
  return half;
}

function poolLabels(dataset: Dataset, pool: number[]): number[] {
  return E.tidy(() => dataset.gather(pool).labels.toNumbers());
}

/**
 * The pool (training indices, `poolPerClass` of each class) and the target's members among them (half
 * of each class), both from `seed`.
 */
export function privacySplit(
  dataset: Dataset,
  poolPerClass: number,
  seed: number,
): { pool: number[]; member: boolean[] } {
  const pool = drawPool(dataset, poolPerClass, seed);
  return { pool, member: classHalves(poolLabels(dataset, pool), new E.Generator(seed + 1)) };
}

/**
 * The shadows' training data over the pool (labels per position): shadows in complementary pairs, one
 * a random half of each class, the other the rest, so that every example trains exactly half of the
 * paired shadows (LiRA's train.py keeps each example in half of them) and every shadow is class-
 * balanced like the target; an odd last shadow takes a random half of each class. Every example is
 * then OUT of at least floor(K/2) >= 1 shadows.
 */
export function shadowSplits(labels: readonly number[], shadows: number, seed: number): boolean[][] {
  const gen = new E.Generator(seed);
  const split: boolean[][] = [];
  while (split.length < shadows) {
    const half = classHalves(labels, gen);
    split.push(half);
    if (split.length < shadows) split.push(half.map((x) => !x));
  }
  return split;
}

/** The training set a target kind makes from the data it may see. The caller disposes it. */
async function pipelineSet(
  kind: string,
  data: Dataset,
  o: PrivacyOptions,
  gen: E.Generator,
  runDir: string,
): Promise<StoredSet> {
  if (kind === 'real')
    return { images: data.train.images.clone(), labels: data.train.labels.clone(), lr: null };
  return buildSet(kind, data, o.ipc, gen, {
    runDir,
    preset: o.preset,
    overrides: o.overrides,
    model: o.model,
  });
}

/**
 * Runs one pipeline on the pool images `trainOn` and returns its network's phi/loss over the pool, and
 * its test accuracy when `scoreTest` (the targets'; the shadows' would be unused work).
 */
async function runPipeline(
  kind: string,
  dataset: Dataset,
  pool: number[],
  trainOn: boolean[],
  o: PrivacyOptions,
  protocol: Protocol,
  seed: number,
  runDir: string,
  scoreTest = false,
): Promise<{ phi: number[]; loss: number[]; testAccuracy?: number; trainImages: number }> {
  const data = trainSubset(
    dataset,
    pool.filter((_, j) => trainOn[j]),
  );
  let set: StoredSet | null = null;
  let created: E.Tensor[] = [];
  const poolSplit = dataset.gather(pool);
  try {
    set = await pipelineSet(kind, data, o, new E.Generator(seed), runDir);
    const stored = storedTrainSets(set);
    const own = stored.own;
    created = stored.created;
    const net = createNetwork(o.model ?? 'ConvNet', dataset.imageShape, dataset.numClasses);
    return trainAndUse(net, own, protocol, new E.Generator(seed + 1), (state) => {
      const logits = predictLogits(net, state, poolSplit.images);
      const c = confidences(logits, poolSplit.labels);
      logits.dispose();
      const trainImages = own.images.size(0);
      return scoreTest
        ? { ...c, trainImages, testAccuracy: accuracy(net, state, dataset.test) }
        : { ...c, trainImages };
    });
  } finally {
    for (const t of [...created, poolSplit.images, poolSplit.labels]) t.dispose();
    if (set) disposeSet(set);
    data.dispose();
  }
}

/**
 * Trains and attacks each target kind.
 *
 * @example await membershipPrivacy(loadDataset('mnist'), { targets: ['real', 'random', 'dm'], poolPerClass: 200, ipc: 10, shadows: 4, epochs: 100, seed: 0, workDir: 'runs/privacy' })
 */
export async function membershipPrivacy(dataset: Dataset, o: PrivacyOptions): Promise<PrivacyResult> {
  checkSources(o.targets, { artifacts: false, what: 'privacy --targets', extras: ['real'] });
  if (!Number.isInteger(o.shadows) || o.shadows < 2)
    throw new AppError(
      `--shadows must be at least 2 (each example must be OUT of a shadow), got ${o.shadows}`,
    );
  // Every pipeline sees half of each class of the pool (rounded down at least).
  const half = Math.floor(o.poolPerClass / 2);
  if (!Number.isInteger(o.ipc) || o.ipc < 1 || o.ipc > half)
    throw new AppError(
      `--ipc must be between 1 and ${half} (half of --pool-per-class ${o.poolPerClass}: what each pipeline sees of a class), got ${o.ipc}`,
    );
  const log = o.log ?? (() => {});
  const model = o.model ?? 'ConvNet';
  const protocol = defaultProtocol(dataset.name, {
    augment: o.augment ?? true,
    epochs: o.epochs,
    precision: o.precision,
  });
  const { pool, member } = privacySplit(dataset, o.poolPerClass, o.seed);
  const splits = shadowSplits(poolLabels(dataset, pool), o.shadows, o.seed + 2);
  const targets: Record<string, TargetResult> = {};
  for (const [t, kind] of o.targets.entries()) {
    // Target and shadows of target kind t: their own generator streams (seed, seed + 2, seed + 4, ...).
    const seed = (o.seed + 1) * 1_000_000_000 + t * 1_000_000;
    const dir = `${o.workDir}/${kind}`;
    const target = await runPipeline(kind, dataset, pool, member, o, protocol, seed, `${dir}/target`, true);
    const testAccuracy = target.testAccuracy!; // asked for with scoreTest
    log(`${kind}: target trained on ${target.trainImages} images, test ${(100 * testAccuracy).toFixed(2)}%`);
    const shadowPhi: number[][] = [];
    for (let k = 0; k < o.shadows; k++) {
      const s = await runPipeline(
        kind,
        dataset,
        pool,
        splits[k],
        o,
        protocol,
        seed + 2 * (k + 1),
        `${dir}/shadow${k}`,
      );
      shadowPhi.push(s.phi);
      log(`${kind}: shadow ${k + 1}/${o.shadows} done`);
    }
    const lossAttack = attackResult(
      target.loss.map((l) => -l),
      member,
    );
    const lira = attackResult(liraOffline(target.phi, shadowPhi, splits), member);
    targets[kind] = {
      testAccuracy,
      trainImages: target.trainImages,
      attacks: { loss: lossAttack, lira },
    };
    log(
      `${kind}: loss attack AUC ${lossAttack.auc.toFixed(3)}, LiRA AUC ${lira.auc.toFixed(3)} (TPR ${(100 * lira.tprAt1).toFixed(1)}% at 1% FPR)`,
    );
  }
  const members = member.filter(Boolean).length;
  return {
    dataset: dataset.name,
    ipc: o.ipc,
    poolPerClass: o.poolPerClass,
    members,
    nonMembers: pool.length - members,
    shadows: o.shadows,
    model,
    protocol,
    targets,
  };
}
