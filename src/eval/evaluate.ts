// Evaluation of a labelled set under the protocol: N freshly initialised networks
// per model, mean +- std of the final test accuracy; next to random real subsets
// of the same size (a fresh draw per network: two draws of 10 MNIST images differ
// by up to ~30 points, so one fixed draw would hide most of the spread) and the
// full training set, both measured with the same protocol and cached per dataset
// x model x protocol.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as E from '../engine/index.js';
import type { Dataset } from '../data/dataset.js';
import { createNetwork } from '../models/index.js';
import { makeDirectory, writeFileAtomic } from '../engine/files.js';
import { cacheDir, cacheName } from '../util/cache.js';
import { trainAndTest, type Protocol, type TrainHooks, type TrainSet } from './protocol.js';

export interface Score {
  mean: number;
  std: number;
  runs: number[];
}

export interface EvaluationOptions {
  models: string[];
  runs: number;
  protocol: Protocol;
  seed: number;
  /** Called after each trained network (for progress bars). */
  onRun?: (model: string, run: number, accuracy: number) => void;
  /** Called after each epoch of each network (epochs 0..protocol.epochs). */
  onEpoch?: (model: string, run: number, epoch: number) => void;
  /**
   * Share the networks among the ranks of a data-parallel run: network r trains on rank r mod size
   * (with its own seed, as in one process) and the accuracies are summed over ranks, so every rank
   * returns the single-process result.
   */
  world?: EvaluationShard;
}

/** What evaluation needs of a process group. */
export interface EvaluationShard {
  readonly rank: number;
  readonly worldSize: number;
  allReduce(tensors: E.Tensor[], op?: 'sum' | 'max' | 'min' | 'product'): void;
}

/**
 * The evaluation seed of a set distilled with run seed `seed`, evaluated after `iteration` iterations:
 * one derivation for `distill`'s own evaluations and `distillery eval`, so both score an artifact alike.
 */
export function evaluationSeed(seed: number, iteration: number): number {
  return seed + 1 + iteration;
}

function epochHook(o: EvaluationOptions, model: string, run: number): TrainHooks {
  return o.onEpoch ? { onEpoch: (epoch) => o.onEpoch!(model, run, epoch) } : {};
}

export function summarize(runs: number[]): Score {
  const mean = runs.reduce((a, b) => a + b, 0) / runs.length;
  const variance = runs.reduce((a, b) => a + (b - mean) ** 2, 0) / runs.length;
  return { mean, std: Math.sqrt(variance), runs };
}

/** Trains `runs` networks per model on `train` and reports test accuracy per model. */
export function evaluateSet(dataset: Dataset, train: TrainSet, o: EvaluationOptions): Record<string, Score> {
  checkTestSplit(dataset);
  const shard = o.world && o.world.worldSize > 1 ? o.world : null;
  const accs = o.models.map((model, m) => {
    const net = createNetwork(model, dataset.imageShape, dataset.numClasses);
    const out: number[] = [];
    for (let r = 0; r < o.runs; r++) {
      if (shard && r % shard.worldSize !== shard.rank) {
        out.push(0); // another rank's network: its accuracy arrives in the sum below
        continue;
      }
      // Each (model, run) has its own stream, so adding models or runs never changes earlier results.
      const gen = new E.Generator(o.seed * 1000 + m * 100 + r);
      const { testAccuracy } = trainAndTest(
        net,
        train,
        dataset.test,
        o.protocol,
        gen,
        epochHook(o, model, r),
      );
      out.push(testAccuracy);
      o.onRun?.(model, r, testAccuracy);
    }
    return out;
  });
  if (shard && o.runs > 0) {
    const all = E.tensor(accs.flat(), { dtype: 'float64' });
    shard.allReduce([all]);
    const summed = all.toNumbers();
    all.dispose();
    accs.forEach((a, m) => a.forEach((_, r) => (a[r] = summed[m * o.runs + r])));
  }
  return Object.fromEntries(o.models.map((model, m) => [model, summarize(accs[m])]));
}

function allFinite(value: unknown): boolean {
  if (typeof value === 'number') return Number.isFinite(value);
  if (value === null) return false; // JSON's spelling of a NaN that older versions cached
  if (typeof value !== 'object') return true;
  return Object.values(value).every(allFinite);
}

/** Evaluation needs test images: accuracy over none is NaN. */
function checkTestSplit(dataset: Dataset): void {
  if (dataset.test.images.size(0) === 0)
    throw new Error(`${dataset.name} has no test images, so nothing can be evaluated; give it a test split`);
}

/**
 * A result fully determined by `key` from the user cache (section `baselines` unless given), else
 * computed and stored. Non-finite results are errors, never stored.
 */
export function cachedResult<T>(key: unknown, compute: () => T, section = 'baselines'): T {
  const dir = join(cacheDir(), section);
  const file = join(dir, `${cacheName(key)}.json`);
  if (existsSync(file)) {
    try {
      const entry = JSON.parse(readFileSync(file, 'utf8')) as { key: unknown; value: T };
      // An entry with a non-finite (null) score was written by an older version: recomputed.
      if (JSON.stringify(entry.key) === JSON.stringify(key) && allFinite(entry.value)) return entry.value;
    } catch {
      // A corrupt cache entry is recomputed and overwritten.
    }
  }
  const value = compute();
  // A NaN is a failure, not a baseline: never cached (JSON would even write it as null).
  if (!allFinite(value))
    throw new Error(`baseline evaluation gave a non-finite result: ${JSON.stringify(value)}`);
  makeDirectory(dir);
  writeFileAtomic(file, JSON.stringify({ key, value }));
  return value;
}

/**
 * Trains one network per subset: run r of each model trains on the training images `pick(r)`
 * returns, with the same per-(model, run) streams as evaluateSet. Mean +- std is over subsets and
 * networks together.
 */
export function evaluateSubsets(
  dataset: Dataset,
  pick: (run: number) => number[],
  o: EvaluationOptions,
): Record<string, Score> {
  checkTestSplit(dataset);
  const out: Record<string, Score> = {};
  o.models.forEach((model, m) => {
    const net = createNetwork(model, dataset.imageShape, dataset.numClasses);
    const accs: number[] = [];
    for (let r = 0; r < o.runs; r++) {
      const subset = dataset.gather(pick(r));
      try {
        const gen = new E.Generator(o.seed * 1000 + m * 100 + r);
        accs.push(
          trainAndTest(net, subset, dataset.test, o.protocol, gen, epochHook(o, model, r)).testAccuracy,
        );
      } finally {
        subset.images.dispose();
        subset.labels.dispose();
      }
      o.onRun?.(model, r, accs[accs.length - 1]);
    }
    out[model] = summarize(accs);
  });
  return out;
}

/**
 * Random real subsets of `ipc` images per class, a fresh draw for every network (draw r is the same
 * for every model), same protocol; cached.
 */
export function randomSubsetBaseline(
  dataset: Dataset,
  ipc: number,
  o: EvaluationOptions,
): Record<string, Score> {
  const key = {
    kind: 'random-subsets',
    draws: 'one per network',
    dataset: dataset.name,
    checksum: dataset.info.checksum,
    preprocessing: dataset.preprocessing.toSpec(),
    ipc,
    models: o.models,
    runs: o.runs,
    protocol: o.protocol,
    seed: o.seed,
  };
  return cachedResult(key, () =>
    evaluateSubsets(
      dataset,
      (r) => dataset.sampleIndices(ipc, new E.Generator(o.seed * 7919 + 104729 + r)),
      o,
    ),
  );
}

/**
 * Full training set with the same optimiser settings. The full-data run uses its own
 * (much smaller) epoch budget: 300-1000 epochs over 60,000 images is days on a CPU.
 */
export function fullDataBaseline(
  dataset: Dataset,
  o: EvaluationOptions & { fullEpochs: number },
): Record<string, Score> {
  const protocol = { ...o.protocol, epochs: o.fullEpochs };
  const key = {
    kind: 'full-data',
    dataset: dataset.name,
    checksum: dataset.info.checksum,
    preprocessing: dataset.preprocessing.toSpec(),
    models: o.models,
    runs: o.runs,
    protocol,
    seed: o.seed,
  };
  return cachedResult(key, () =>
    evaluateSet(dataset, { images: dataset.train.images, labels: dataset.train.labels }, { ...o, protocol }),
  );
}
