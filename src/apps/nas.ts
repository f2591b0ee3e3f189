// Architecture search with a small set as the proxy, as the DC paper (Zhao et al. 2021, Sec. 4.3)
// evaluates it: every architecture of a ConvNet search space is trained briefly on the proxy set and,
// for the ground truth, on the real training data; both are scored on a validation split held out
// from the training set (the test split is never used to choose); the proxy's ranking is compared with
// the real one (Spearman's rho over all architectures, Kendall's tau, Spearman over the real top-k as
// FTD's Table 5), and the architecture the proxy picks is reported with its real test accuracy next
// to the real best. The ground truth is cached per architecture, so only the proxy side is recomputed.
import * as E from '../engine/index.js';
import { trainSubset, type Dataset, type Split } from '../data/dataset.js';
import { createNetwork } from '../models/index.js';
import {
  accuracy,
  cachedResult,
  DivergedError,
  defaultProtocol,
  storedTrainSets,
  trainAndUse,
  type Protocol,
  type TrainingPrecision,
  type TrainSet,
} from '../eval/index.js';
import { kendallTau, spearman } from '../util/stats.js';
import { AppError, buildSet, checkSources, disposeSet, sourceKind } from './sets.js';

/** The axes of a ConvNet search space, as model-spec tokens (models/zoo.ts). */
export interface SpaceAxes {
  depths: number[];
  widths: number[];
  /** AS (sigmoid), AR (ReLU), AL (leaky ReLU), ASW (swish). */
  activations: string[];
  /** NN, BN, LN, IN, GN. */
  norms: string[];
  /** NP, MP, AP. */
  pools: string[];
}

/** The DC paper's space: 4 depths x 4 widths x 3 activations x 5 normalisations x 3 poolings = 720. */
export const DC_SPACE: SpaceAxes = {
  depths: [1, 2, 3, 4],
  widths: [32, 64, 128, 256],
  activations: ['AS', 'AR', 'AL'],
  norms: ['NN', 'BN', 'LN', 'IN', 'GN'],
  pools: ['NP', 'MP', 'AP'],
};

/**
 * The model specs of a search space (every combination of the axes), or `sample` of them drawn
 * without replacement from `seed` (kept in grid order).
 *
 * @example searchSpace(DC_SPACE).length // 720; searchSpace(DC_SPACE, 32, 0) // 32 of them
 */
export function searchSpace(axes: SpaceAxes = DC_SPACE, sample?: number, seed = 0): string[] {
  const all: string[] = [];
  for (const d of axes.depths)
    for (const w of axes.widths)
      for (const a of axes.activations)
        for (const n of axes.norms) for (const p of axes.pools) all.push(`ConvNetD${d}W${w}${a}${n}${p}`);
  if (all.length === 0) throw new AppError('the search space is empty: every axis needs a value');
  if (sample === undefined || sample >= all.length) return all;
  if (!Number.isInteger(sample) || sample < 2)
    throw new AppError(`--architectures must be at least 2 (a ranking needs two), got ${sample}`);
  const picked = E.tidy(() => E.randperm(all.length, { generator: new E.Generator(seed) }).toNumbers());
  return picked
    .slice(0, sample)
    .sort((a, b) => a - b)
    .map((i) => all[i]);
}

export interface NasOptions {
  /** Model specs to rank (at least 2). */
  space: string[];
  /** Proxy sets: random, herding, a method name, an artifact directory, or 'early-stopping'. */
  proxies: string[];
  ipc: number;
  /** Epochs of each architecture on a proxy set (the DC/FTD protocol: 200). */
  proxyEpochs: number;
  /** Epochs of each architecture on the real training part (the ground truth). */
  realEpochs: number;
  /** Real images per class the ground truth trains on (default: all of the training part). */
  realPerClass?: number;
  /** Training images per class held out for validation (ranking and selection). */
  valPerClass: number;
  seed: number;
  precision?: TrainingPrecision;
  /** Distillation of method proxies: preset and config overrides. */
  preset?: 'quick' | 'paper' | null;
  overrides?: Record<string, unknown>;
  workDir: string;
  log?: (line: string) => void;
}

export interface ArchitectureTruth {
  spec: string;
  /** Trained on the real training part: validation and test accuracy (fractions), seconds. */
  val: number;
  test: number;
  seconds: number;
  /** The training diverged (scored 0). */
  diverged?: true;
}

export interface ProxyResult {
  /** Per architecture (in `architectures` order): validation accuracy after proxy training, seconds. */
  val: number[];
  seconds: number[];
  spearman: number;
  kendall: number;
  /** Spearman over the k architectures best on real data (k = 5, 10, 20 where the space has them). */
  topK: Record<string, number>;
  /** The architecture with the best proxy validation accuracy, its real test accuracy and real rank (1 = best). */
  selected: { spec: string; realTest: number; realRank: number };
  totalSeconds: number;
  /** Training images of the proxy set. */
  images: number;
}

export interface NasResult {
  dataset: string;
  ipc: number;
  validationPerClass: number;
  realProtocol: Protocol & { perClass: number | null };
  proxyProtocol: Protocol;
  architectures: ArchitectureTruth[];
  /** The best architecture on real validation accuracy and its test accuracy. */
  best: { spec: string; realTest: number };
  realSeconds: number;
  proxies: Record<string, ProxyResult>;
}

/** The training images held out for validation: `perClass` of each class, drawn from `seed`. */
export function validationSplit(
  dataset: Dataset,
  perClass: number,
  seed: number,
): { val: number[]; rest: number[] } {
  if (!Number.isInteger(perClass) || perClass < 1 || perClass >= dataset.smallestClassSize)
    throw new AppError(
      `--val-per-class must be between 1 and ${dataset.smallestClassSize - 1} (the smallest class, less one to train on), got ${perClass}`,
    );
  const val = dataset.sampleIndices(perClass, new E.Generator(seed));
  const held = new Set(val);
  const n = dataset.train.images.size(0);
  return { val, rest: Array.from({ length: n }, (_, i) => i).filter((i) => !held.has(i)) };
}

/**
 * The initialisation seed of an architecture: from the search seed and the spec itself (FNV-1a), so an
 * architecture starts from the same weights on every training set and in every sample of the space
 * (its cached ground truth then serves any search that contains it).
 */
function architectureSeed(spec: string, seed: number): number {
  let h = 0x811c9dc5;
  for (const ch of spec) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193) >>> 0;
  return seed * 4_294_967_296 + h;
}

/**
 * Trains `spec` on `train` from its own initialisation and scores it on each of `splits` (validation;
 * test only for the ground truth, where it is reported). A training that diverges (a sigmoid network
 * without normalisation can) scores 0: last in any ranking.
 */
function trainArchitecture<K extends string>(
  spec: string,
  dataset: Dataset,
  train: TrainSet,
  splits: Record<K, Split>,
  protocol: Protocol,
  seed: number,
): { accuracy: Record<K, number>; seconds: number; diverged?: true } {
  const net = createNetwork(spec, dataset.imageShape, dataset.numClasses);
  const t0 = performance.now();
  const scores = (f: (split: Split) => number) =>
    Object.fromEntries(Object.entries<Split>(splits).map(([k, split]) => [k, f(split)])) as Record<K, number>;
  try {
    return trainAndUse(net, train, protocol, new E.Generator(architectureSeed(spec, seed)), (state) => ({
      // Batches of 256: a wide ConvNet without pooling holds ~1 GB of activations per 256 images.
      accuracy: scores((split) => accuracy(net, state, split, 256)),
      seconds: (performance.now() - t0) / 1000,
    }));
  } catch (e) {
    if (!(e instanceof DivergedError)) throw e;
    return { accuracy: scores(() => 0), seconds: (performance.now() - t0) / 1000, diverged: true };
  }
}

/** Spearman over the k architectures best on real validation accuracy. */
function topKCorrelations(real: number[], proxy: number[]): Record<string, number> {
  const order = real.map((_, i) => i).sort((a, b) => real[b] - real[a]);
  const out: Record<string, number> = {};
  for (const k of [5, 10, 20])
    if (k <= real.length) {
      const top = order.slice(0, k);
      out[k] = spearman(
        top.map((i) => real[i]),
        top.map((i) => proxy[i]),
      );
    }
  return out;
}

function argmax(xs: number[]): number {
  return xs.reduce((best, v, i) => (v > xs[best] ? i : best), 0);
}

/** How a proxy's validation accuracies rank the architectures against the real ground truth. */
export function rankAgainstTruth(
  truth: ArchitectureTruth[],
  val: number[],
  seconds: number[],
  images: number,
): ProxyResult {
  const real = truth.map((a) => a.val);
  const pick = argmax(val);
  // Rank 1 is the best real validation accuracy; ties share the better rank.
  const realRank = 1 + real.filter((v) => v > real[pick]).length;
  return {
    val,
    seconds,
    spearman: spearman(real, val),
    kendall: kendallTau(real, val),
    topK: topKCorrelations(real, val),
    selected: { spec: truth[pick].spec, realTest: truth[pick].test, realRank },
    totalSeconds: seconds.reduce((s, v) => s + v, 0),
    images,
  };
}

function checkOptions(dataset: Dataset, o: NasOptions): void {
  if (o.space.length < 2)
    throw new AppError(`the search space needs at least 2 architectures, got ${o.space.length}`);
  for (const spec of o.space)
    try {
      createNetwork(spec, dataset.imageShape, dataset.numClasses);
    } catch (e) {
      throw new AppError(`search space: ${e instanceof Error ? e.message : String(e)}`);
    }
  checkSources(o.proxies, { artifacts: true, what: 'nas --proxies', extras: ['early-stopping'] });
  if (!Number.isInteger(o.ipc) || o.ipc < 1)
    throw new AppError(`--ipc must be a positive integer, got ${o.ipc}`);
}

/** The real ground truth for every architecture (cached per architecture). */
function groundTruth(
  dataset: Dataset,
  trainPart: Dataset,
  val: Split,
  o: NasOptions,
  protocol: Protocol,
  log: (line: string) => void,
): ArchitectureTruth[] {
  const picked = o.realPerClass ? trainPart.sampleIndices(o.realPerClass, new E.Generator(o.seed + 1)) : null;
  const real = picked ? trainPart.gather(picked) : trainPart.train;
  try {
    return o.space.map((spec, i) => {
      const key = {
        kind: 'nas-real',
        dataset: trainPart.info.checksum,
        preprocessing: trainPart.preprocessing.toSpec(),
        spec,
        protocol,
        realPerClass: o.realPerClass ?? null,
        seed: o.seed,
      };
      const r = cachedResult(
        key,
        () => {
          log(
            `real ${i + 1}/${o.space.length} ${spec} (${protocol.epochs + 1} epochs on ${real.images.size(0)} images)`,
          );
          const r = trainArchitecture(spec, dataset, real, { val, test: dataset.test }, protocol, o.seed);
          return { ...r.accuracy, seconds: r.seconds, ...(r.diverged ? { diverged: r.diverged } : {}) };
        },
        'nas',
      );
      return { spec, ...r };
    });
  } finally {
    if (picked) for (const t of [real.images, real.labels]) t.dispose();
  }
}

/**
 * Ranks the architectures of `o.space` with each proxy set against the real ground truth.
 *
 * @example await architectureSearch(loadDataset('mnist'), { space: searchSpace(DC_SPACE, 32), proxies: ['random', 'dm'], ipc: 10, proxyEpochs: 200, realEpochs: 5, valPerClass: 100, seed: 0, workDir: 'runs/nas' })
 */
export async function architectureSearch(dataset: Dataset, o: NasOptions): Promise<NasResult> {
  checkOptions(dataset, o);
  const log = o.log ?? (() => {});
  const { val: valIndices, rest } = validationSplit(dataset, o.valPerClass, o.seed);
  const val = dataset.gather(valIndices);
  const trainPart = trainSubset(dataset, rest);
  const realProtocol = defaultProtocol(dataset.name, {
    augment: false,
    epochs: o.realEpochs,
    precision: o.precision,
  });
  const proxyProtocol = defaultProtocol(dataset.name, { epochs: o.proxyEpochs, precision: o.precision });
  try {
    const truth = groundTruth(dataset, trainPart, val, o, realProtocol, log);
    const bestIndex = argmax(truth.map((a) => a.val));
    const proxies: Record<string, ProxyResult> = {};
    const search: Search = { dataset, trainPart, val, truth, o, log };
    for (const [p, name] of o.proxies.entries()) {
      proxies[name] = await rankWithProxy(search, name, p, proxyProtocol);
      const r = proxies[name];
      log(
        `${name}: Spearman ${r.spearman.toFixed(3)}, picks ${r.selected.spec} (real test ${(100 * r.selected.realTest).toFixed(2)}%, real rank ${r.selected.realRank})`,
      );
    }
    return {
      dataset: dataset.name,
      ipc: o.ipc,
      validationPerClass: o.valPerClass,
      realProtocol: { ...realProtocol, perClass: o.realPerClass ?? null },
      proxyProtocol,
      architectures: truth,
      best: { spec: truth[bestIndex].spec, realTest: truth[bestIndex].test },
      realSeconds: truth.reduce((s, a) => s + a.seconds, 0),
      proxies,
    };
  } finally {
    for (const t of [val.images, val.labels]) t.dispose();
    trainPart.dispose();
  }
}

/** What every proxy of one search shares. */
interface Search {
  dataset: Dataset;
  /** The training split without the validation images. */
  trainPart: Dataset;
  val: Split;
  truth: ArchitectureTruth[];
  o: NasOptions;
  log: (line: string) => void;
}

/** Trains every architecture of the space on `train` and ranks them against the truth. */
function trainSpace(
  { dataset, val, truth, o, log }: Search,
  name: string,
  train: TrainSet,
  protocol: Protocol,
): ProxyResult {
  const accuracies: number[] = [];
  const seconds: number[] = [];
  o.space.forEach((spec, i) => {
    const r = trainArchitecture(spec, dataset, train, { val }, protocol, o.seed);
    accuracies.push(r.accuracy.val);
    seconds.push(r.seconds);
    log(
      `${name} ${i + 1}/${o.space.length} ${spec}: val ${(100 * r.accuracy.val).toFixed(2)}% (real ${(100 * truth[i].val).toFixed(2)}%)`,
    );
  });
  return rankAgainstTruth(truth, accuracies, seconds, train.images.size(0));
}

/** Builds one proxy set, trains every architecture on it and ranks them. */
async function rankWithProxy(
  search: Search,
  name: string,
  index: number,
  protocol: Protocol,
): Promise<ProxyResult> {
  const { trainPart, o, log } = search;
  if (name === 'early-stopping') return earlyStopping(search, protocol);
  if (sourceKind(name) === 'artifact')
    log(
      `${name}: an artifact distilled elsewhere may have seen the validation images; a method name distils from the training part only`,
    );
  const set = await buildSet(name, trainPart, o.ipc, new E.Generator(o.seed * 1000 + index), {
    runDir: `${o.workDir}/${name.replace(/[^\w.-]+/g, '_')}`,
    preset: o.preset,
    overrides: o.overrides,
  });
  const { own, created } = storedTrainSets(set);
  try {
    return trainSpace(search, name, own, protocol);
  } finally {
    for (const t of created) t.dispose();
    disposeSet(set);
  }
}

/**
 * The DC paper's early-stopping baseline: every architecture on the real training part (no
 * augmentation, as the ground truth) stopped after as many SGD steps as a proxy of `ipc` images per
 * class takes, at the protocol's first learning rate (one pass over steps x batch real images, drawn
 * epoch by epoch).
 */
function earlyStopping(search: Search, protocol: Protocol): ProxyResult {
  const { dataset, trainPart, o, log } = search;
  const steps = (o.proxyEpochs + 1) * Math.ceil((o.ipc * dataset.numClasses) / protocol.batchSize);
  const n = trainPart.train.images.size(0);
  const take = steps * protocol.batchSize;
  // Fresh permutations of the training part back to back, cut at steps x batch: one pass over them is
  // the proxy's number of steps even when that is more than one epoch of real data.
  const gen = new E.Generator(o.seed + 2);
  const picked: number[] = [];
  while (picked.length < take) picked.push(...E.tidy(() => E.randperm(n, { generator: gen }).toNumbers()));
  const real = trainPart.gather(picked.slice(0, take));
  // Epoch 0 only: one pass, so no learning-rate drop.
  const p: Protocol = { ...protocol, augment: 'none', epochs: 0 };
  log(`early-stopping: ${steps} steps of ${protocol.batchSize} real training images`);
  try {
    return trainSpace(search, 'early-stopping', real, p);
  } finally {
    for (const t of [real.images, real.labels]) t.dispose();
  }
}
