// `distillery study`: runs a study's grid cell by cell into a directory:
//   DIR/study.json       the validated study
//   DIR/results.jsonl    one finished cell per line (rewritten atomically as cells finish)
//   DIR/runs/<cell>/     each method cell's run directory (checkpoints: a killed cell resumes)
//   DIR/summary.json, DIR/summary.md   the leaderboard, rewritten after every cell
// A cell is finished when results.jsonl holds its key with the same settings hash; editing one
// method's settings recomputes only that method's cells. The directory is locked while a study runs.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as E from '../engine/index.js';
import { makeDirectory, writeFileAtomic } from '../engine/files.js';
import type { Dataset } from '../data/dataset.js';
import { loadDataset } from '../data/registry.js';
import { distill } from '../distill/api.js';
import { evaluationProtocol, layeredConfig } from '../distill/config.js';
import { RunDir } from '../distill/rundir.js';
import { selectCoreset, selectionNetwork } from '../coreset/index.js';
import {
  defaultProtocol,
  evaluateSet,
  evaluationSeed,
  fullDataBaseline,
  randomSubsetBaseline,
  storedTrainSets,
  type Protocol,
  type Score,
  type TrainSet,
} from '../eval/index.js';
import type { StorageInfo } from '../param/budget.js';
import { cacheName } from '../util/cache.js';
import { median } from '../util/stats.js';
import { defaultStrategy } from '../augment/index.js';
import { honestScores, type HonestScores } from './scores.js';
import { methodLabel, type StudyBaseline, type StudyMethod, type StudySpec } from './spec.js';
import { writeSummaries } from './summary.js';

export interface CellResult {
  key: string;
  /** Hash of the settings the cell was computed with. */
  hash: string;
  kind: 'method' | 'baseline';
  dataset: string;
  ipc: number;
  /** The row: a method entry's label, or the baseline's name. */
  label: string;
  method?: string;
  seed?: number;
  /** Final-epoch test accuracy (fractions) per evaluation model, mean +- std over networks. */
  accuracy: Record<string, Score>;
  protocol: Protocol;
  labels: 'hard' | 'soft';
  learnedLr?: number | null;
  /** With honest scores: the set with hard labels, and without augmentation (main model). */
  hardLabel?: Score;
  noAug?: Score;
  /** The random-subset accuracies the scores compare against (same protocol; main model). */
  random?: Score;
  randomNoAug?: Score;
  scores?: HonestScores;
  iterations?: number;
  /** Median seconds per distillation iteration (the first excluded) and the loop's total in this process. */
  secondsPerIteration?: number;
  distillSeconds?: number;
  /** Allocator peak during distillation above what was in use before it (MiB). */
  peakMiB?: number;
  storage?: StorageInfo;
}

export interface StudyHooks {
  log?(line: string): void;
}

const RESULTS = 'results.jsonl';

export function readResults(dir: string): CellResult[] {
  const file = join(dir, RESULTS);
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l, i) => {
      try {
        return JSON.parse(l) as CellResult;
      } catch {
        throw new Error(`${file} line ${i + 1} is not JSON; remove that line to recompute its cell`);
      }
    });
}

function saveResult(dir: string, results: CellResult[], r: CellResult): CellResult[] {
  if (!allFinite(r)) throw new Error(`cell ${r.key} gave a non-finite result; nothing was recorded`);
  const next = [...results.filter((x) => x.key !== r.key), r];
  writeFileAtomic(join(dir, RESULTS), next.map((x) => JSON.stringify(x)).join('\n') + '\n');
  return next;
}

function allFinite(v: unknown): boolean {
  if (typeof v === 'number') return Number.isFinite(v);
  if (v === null || typeof v !== 'object') return true;
  return Object.values(v).every(allFinite);
}

const mainModel = (spec: StudySpec) => spec.evaluation.models[0];

function baseProtocol(spec: StudySpec, dataset: Dataset, augment: boolean | string = true): Protocol {
  return defaultProtocol(dataset.name, {
    augment,
    epochs: spec.evaluation.epochs,
    precision: spec.evaluation.precision,
  });
}

/** The protocol without augmentation (for the augmentation-robust score). */
const withoutAugment = (p: Protocol): Protocol => ({ ...p, augment: 'none' });

function evalOptions(
  spec: StudySpec,
  protocol: Protocol,
  seed: number,
  models: readonly string[] = spec.evaluation.models,
) {
  return { models: [...models], runs: spec.evaluation.runs, protocol, seed };
}

function baselineCell(
  spec: StudySpec,
  dataset: Dataset,
  ipc: number,
  name: StudyBaseline,
  log: (line: string) => void,
): CellResult {
  const protocol = baseProtocol(spec, dataset);
  const o = evalOptions(spec, protocol, 0);
  let accuracy: Record<string, Score>;
  if (name === 'random') accuracy = randomSubsetBaseline(dataset, ipc, o);
  else if (name === 'full')
    accuracy = fullDataBaseline(dataset, { ...o, runs: 1, fullEpochs: spec.evaluation.fullEpochs });
  else {
    const feature = selectionNetwork(dataset, 0, {
      onTrain: () => log(`training the ${name} selection network`),
    });
    const picked = selectCoreset(name, dataset, ipc, new E.Generator(0), feature);
    const subset = dataset.gather(picked);
    try {
      accuracy = evaluateSet(dataset, subset, o);
    } finally {
      subset.images.dispose();
      subset.labels.dispose();
    }
  }
  const base = {
    kind: 'baseline' as const,
    dataset: dataset.name,
    ipc: name === 'full' ? 0 : ipc,
    label: name,
  };
  return { key: '', hash: '', ...base, accuracy, protocol, labels: 'hard' };
}

/** Loads a dataset once per (name, preprocessing): ZCA presets (MTT, TESLA, DATM) get whitened data. */
export type DatasetLoader = (name: string, o?: { zca?: number | null; dataDir?: string }) => Dataset;

async function methodCell(
  spec: StudySpec,
  dir: string,
  load: DatasetLoader,
  name: string,
  ipc: number,
  entry: StudyMethod,
  seed: number,
  key: string,
  hash: string,
  log: (line: string) => void,
): Promise<CellResult> {
  const runDir = cellRunDir(dir, key, hash);
  const overrides = { ...entry.set, seed, evalRuns: 0, evalEvery: 0 };
  const { config } = layeredConfig({
    method: entry.method,
    dataset: name,
    ipc,
    preset: entry.preset,
    overrides,
  });
  // The data the method's config asks for (ZCA, a local copy); evaluation and scores use the same.
  const dataset = load(name, { zca: config.zca, dataDir: config.dataDir });
  const seconds: number[] = [];
  E.resetPeakMemory();
  const before = E.allocatorStats().inUseBytes;
  const resume = existsSync(join(runDir, 'checkpoint.safetensors'));
  const r = await distill(
    {
      ...overrides,
      method: entry.method,
      dataset: dataset.name,
      ipc,
      ...(entry.preset ? { preset: entry.preset } : {}),
    },
    {
      runDir,
      resume,
      overwrite: !resume,
      dataset,
      hooks: { onIteration: ({ seconds: s }) => seconds.push(s), onMessage: (l) => log(`  ${l}`) },
    },
  );
  const peakMiB = Math.max(0, E.allocatorStats().peakInUseBytes - before) / 2 ** 20;
  if (!r.artifact) throw new Error(`cell ${key}: the distillation was interrupted`);
  const art = r.artifact;
  // The method's protocol (its augmentation, lr schedule) at the study's epochs and precision; the
  // models are the study's.
  const own = evaluationProtocol(config, dataset.name);
  const plain: Protocol = {
    epochs: spec.evaluation.epochs,
    lr: own.lr,
    momentum: own.momentum,
    weightDecay: own.weightDecay,
    batchSize: own.batchSize,
    augment: own.augment,
    precision: spec.evaluation.precision,
  };
  const evalSeed = evaluationSeed(seed, r.iteration);
  const sets = storedTrainSets(art);
  try {
    const accuracy = evaluateSet(dataset, sets.own, evalOptions(spec, plain, evalSeed));
    const cell: CellResult = {
      key,
      hash: '',
      kind: 'method',
      dataset: dataset.name,
      ipc,
      label: methodLabel(entry),
      method: entry.method,
      seed,
      accuracy,
      protocol: plain,
      labels: sets.soft ? 'soft' : 'hard',
      learnedLr: art.lr,
      iterations: r.iteration,
      // A resumed cell measured only its last part: its total is not recorded, its per-iteration time and
      // peak only when iterations ran in this process.
      secondsPerIteration: median(seconds.slice(1)) ?? median(seconds),
      distillSeconds: resume ? undefined : r.seconds?.distill,
      peakMiB: seconds.length > 0 ? peakMiB : undefined,
      storage: art.meta.storage,
    };
    if (spec.scores)
      Object.assign(cell, scoreEvaluations(spec, dataset, ipc, sets, plain, evalSeed, accuracy));
    return cell;
  } finally {
    for (const t of sets.created) t.dispose();
  }
}

/** The extra evaluations DD-Ranking's scores need, on the main model, and the scores. */
function scoreEvaluations(
  spec: StudySpec,
  dataset: Dataset,
  ipc: number,
  sets: { own: TrainSet; hard: TrainSet; soft: boolean },
  protocol: Protocol,
  seed: number,
  accuracy: Record<string, Score>,
): Pick<CellResult, 'hardLabel' | 'noAug' | 'random' | 'randomNoAug' | 'scores'> {
  const model: string[] = [mainModel(spec)];
  const one = (set: TrainSet, p: Protocol) =>
    evaluateSet(dataset, set, evalOptions(spec, p, seed, model))[model[0]];
  // Hard labels under the protocol's own lr: a learned lr belongs to the learned labels.
  const hardLabel = sets.soft || sets.own.lr ? one({ ...sets.hard }, protocol) : accuracy[model[0]];
  // ARS compares with and without augmentation: a protocol without any gets the dataset's DSA for its
  // augmented side, one with some gets 'none' for the other side.
  const augmented = protocol.augment !== 'none';
  const withAug: Protocol = augmented ? protocol : { ...protocol, augment: defaultStrategy(dataset.name) };
  const noAugProtocol = withoutAugment(protocol);
  // The baselines over every evaluation model (though only the main one is read): the same cache
  // entries as the study's random and full-data cells, so nothing is trained twice.
  const randomUnder = (p: Protocol) => randomSubsetBaseline(dataset, ipc, evalOptions(spec, p, 0))[model[0]];
  const synAug = augmented ? accuracy[model[0]] : one(sets.own, withAug);
  const noAug = augmented ? one(sets.own, noAugProtocol) : accuracy[model[0]];
  const random = randomUnder(protocol);
  const randomAug = augmented ? random : randomUnder(withAug);
  const randomNoAug = augmented ? randomUnder(noAugProtocol) : random;
  const full = fullDataBaseline(dataset, {
    ...evalOptions(spec, baseProtocol(spec, dataset), 0),
    runs: 1,
    fullEpochs: spec.evaluation.fullEpochs,
  })[model[0]];
  const scores = honestScores({
    synthetic: accuracy[model[0]].mean,
    syntheticHard: hardLabel.mean,
    syntheticAug: synAug.mean,
    syntheticNoAug: noAug.mean,
    random: random.mean,
    randomAug: randomAug.mean,
    randomNoAug: randomNoAug.mean,
    full: full.mean,
  });
  return { hardLabel, noAug, random, randomNoAug, scores };
}

/** A dataset name as one path segment (a file dataset's path has slashes). */
const safe = (name: string) => name.replace(/[^\w.-]+/g, '_').replace(/^_+/, '');

/**
 * A method cell's run directory: its key and settings hash, so that a killed cell resumes its own
 * checkpoint and a cell whose settings were edited starts afresh.
 */
export function cellRunDir(dir: string, key: string, hash: string): string {
  return join(dir, 'runs', ...key.split('/').slice(0, -1), `${key.split('/').pop()}-${hash.slice(0, 8)}`);
}

/** A cell of the grid: its key, settings hash, and how to compute it. */
export interface PlannedCell {
  key: string;
  hash: string;
  run(): Promise<CellResult> | CellResult;
}

/** Every cell of the study in run order: per dataset and IPC the baselines, then the methods x seeds. */
export function planCells(
  spec: StudySpec,
  dir: string,
  dataset: DatasetLoader,
  log: (line: string) => void,
): PlannedCell[] {
  const cells: PlannedCell[] = [];
  const common = { evaluation: spec.evaluation, scores: spec.scores };
  for (const name of spec.datasets) {
    for (const ipc of spec.ipcs) {
      for (const b of spec.baselines) {
        if (b === 'full' && ipc !== spec.ipcs[0]) continue; // one full-data cell per dataset
        const key = b === 'full' ? `${safe(name)}/full` : `${safe(name)}/ipc${ipc}/${b}`;
        cells.push({
          key,
          hash: cacheName({ b, ...common }),
          run: () => baselineCell(spec, dataset(name), ipc, b, log),
        });
      }
      for (const entry of spec.methods)
        for (const seed of spec.seeds) {
          const key = `${safe(name)}/ipc${ipc}/${methodLabel(entry)}/seed${seed}`;
          const hash = cacheName({ entry, ...common });
          cells.push({
            key,
            hash,
            run: () => methodCell(spec, dir, dataset, name, ipc, entry, seed, key, hash, log),
          });
        }
    }
  }
  return cells;
}

/**
 * The results that belong to the study as it stands: cells still in its grid, with the settings they
 * have now (a removed seed or an edited method's older cells stay in results.jsonl but count nowhere).
 */
export function currentResults(spec: StudySpec, results: CellResult[]): CellResult[] {
  const unused: DatasetLoader = () => {
    throw new Error('planning only');
  };
  const planned = new Set(planCells(spec, '', unused, () => {}).map((c) => `${c.key}|${c.hash}`));
  return results.filter((r) => planned.has(`${r.key}|${r.hash}`));
}

/**
 * Runs every unfinished cell of `spec` into `dir` and returns all results (finished earlier or now).
 *
 * @example const results = await runStudy(loadStudyFile('studies/quick.yaml'), 'studies/out/quick');
 */
export async function runStudy(spec: StudySpec, dir: string, hooks: StudyHooks = {}): Promise<CellResult[]> {
  const log = hooks.log ?? (() => {});
  makeDirectory(dir);
  const lock = new RunDir(dir);
  lock.lock();
  try {
    writeFileAtomic(join(dir, 'study.json'), JSON.stringify(spec, null, 2) + '\n');
    let results = readResults(dir);
    const datasets = new Map<string, Dataset>();
    const dataset: DatasetLoader = (name, o = {}) => {
      const id = JSON.stringify([name, o.zca ?? null, o.dataDir ?? null]);
      if (!datasets.has(id)) datasets.set(id, loadDataset(name, { zca: o.zca ?? null, dataDir: o.dataDir }));
      return datasets.get(id)!;
    };
    const cells = planCells(spec, dir, dataset, log);
    let n = 0;
    for (const cell of cells) {
      n++;
      if (results.some((r) => r.key === cell.key && r.hash === cell.hash)) {
        log(`[${n}/${cells.length}] ${cell.key}: finished earlier`);
        continue;
      }
      log(`[${n}/${cells.length}] ${cell.key}`);
      const r = { ...(await cell.run()), key: cell.key, hash: cell.hash };
      results = saveResult(dir, results, r);
      log(`[${n}/${cells.length}] ${cell.key}: ${describe(r, spec)}`);
      writeSummaries(dir, spec, currentResults(spec, results));
    }
    const current = currentResults(spec, results);
    writeSummaries(dir, spec, current);
    return current;
  } finally {
    lock.unlock();
  }
}

function describe(r: CellResult, spec: StudySpec): string {
  const s = r.accuracy[mainModel(spec)];
  return `${mainModel(spec)} ${(100 * s.mean).toFixed(2)} +- ${(100 * s.std).toFixed(2)}`;
}
