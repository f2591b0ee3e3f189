// `distillery eval <artifact>`: the evaluation protocol on a distilled set, next
// to the random real subset of the same size and the full training set.
import { join } from 'node:path';
import { loadArtifact } from '../../artifact/artifact.js';
import { makeDirectory, writeFileAtomic } from '../../engine/files.js';
import { cacheName } from '../../util/cache.js';
import { loadDataset } from '../../data/registry.js';
import {
  defaultProtocol,
  evaluateSet,
  evaluationSeed,
  fullDataBaseline,
  randomSubsetBaseline,
  storedTrainSets,
  TARGET_LOSSES,
  type AugmentChoice,
  type Score,
  type TargetLoss,
} from '../../eval/index.js';
import { referenceEvalModel } from '../../distill/method.js';
import { METHODS } from '../../distill/registry.js';
import { createReporter, parsePrecision, pct, scoreText, UsageError } from '../output.js';

export interface EvalCommandOptions {
  models?: string;
  runs: number;
  epochs?: number;
  /**
   * Absent: the producing method's reference protocol (DC: 'dc', else DSA); true or 'dsa' (DSA),
   * false (--no-augment), 'dc' (DC's rule) or a protocol augmentation string.
   */
  augment?: boolean | string;
  precision: string;
  /** Sets with learned regression targets: 'softmax' (default), 'argmax' or 'mse' (eval/protocol.ts). */
  targetLoss?: string;
  baselines: boolean;
  /** false (--no-full-data): skip the full-training-set baseline (the expensive one). */
  fullData?: boolean;
  fullEpochs: number;
  /** Default: the artifact's run seed, so the scores reproduce `distill`'s evaluation. */
  seed?: number;
  dataDir?: string;
  json?: boolean;
}

function fmt(s: Score | undefined): string {
  return s ? scoreText(s) : '-';
}

/**
 * Writes one evaluation into ARTIFACT/evaluations/ as JSON (one file per model list x protocol x seed,
 * replaced when rerun), so reports can show cross-architecture results. Returns the file.
 */
function saveEvaluation(artifactDir: string, result: Record<string, unknown>): string {
  const dir = join(artifactDir, 'evaluations');
  makeDirectory(dir);
  const key = {
    models: result.models,
    protocols: result.protocols,
    targetLoss: result.targetLoss,
    seed: result.seed,
    runs: result.runs,
  };
  const file = join(dir, `${(result.models as string[]).join('+')}-${cacheName(key).slice(0, 12)}.json`);
  writeFileAtomic(file, `${JSON.stringify({ ...result, createdAt: new Date().toISOString() }, null, 2)}\n`);
  return file;
}

function parseModels(list: string): string[] {
  const models = list
    .split(',')
    .map((m) => m.trim())
    .filter(Boolean);
  if (!models.length)
    throw new UsageError(`--models: no model names in '${list}' (e.g. --models ConvNet,ConvNetBN)`);
  return models;
}

function parseTargetLoss(s: string | undefined): TargetLoss {
  const v = s ?? 'softmax';
  if (!(TARGET_LOSSES as readonly string[]).includes(v))
    throw new UsageError(`--target-loss must be one of ${TARGET_LOSSES.join(', ')}, got '${v}'`);
  return v as TargetLoss;
}

export function evalCommand(artifactDir: string, o: EvalCommandOptions): void {
  const out = createReporter(o.json ?? false);
  const precision = parsePrecision(o.precision);
  const givenModels = o.models !== undefined ? parseModels(o.models) : undefined;
  if (o.targetLoss !== undefined) parseTargetLoss(o.targetLoss); // fail before loading anything
  // Peek at the artifact's meta first: the dataset is loaded with the artifact's own preprocessing.
  const probe = loadArtifact(artifactDir);
  const dataset = loadDataset(probe.meta.dataset.name, {
    dataDir: o.dataDir,
    preprocessing: probe.preprocessing,
  });
  const art = loadArtifact(artifactDir, dataset);
  // Default: the loss distill evaluated this artifact with, so eval reproduces it.
  const recorded = (art.meta.metrics as { targetLoss?: string }).targetLoss;
  const targetLoss = parseTargetLoss(o.targetLoss ?? recorded);
  // Defaults: what the producing method's reference evaluates with (coresets: DSA on eval mode 'S').
  const method = METHODS.find((m) => m.name === art.meta.method);
  const models = givenModels ?? [referenceEvalModel(method, art.meta.model)];
  const given = o.augment === 'true' ? true : o.augment === 'false' ? false : o.augment;
  const choice = given ?? (method?.defaults.evalAugment as AugmentChoice | undefined) ?? true;
  // DC's rule depends on the model (crop_noise for ConvNetBN), so each model has its own protocol.
  const protocols = models.map((m) => {
    try {
      return defaultProtocol(dataset.name, { augment: choice, precision, epochs: o.epochs, evalModel: m });
    } catch (e) {
      throw new UsageError(`--augment: ${e instanceof Error ? e.message : String(e)}`);
    }
  });
  const m = art.meta;
  const stored =
    m.parameterization.kind === 'pixels'
      ? `${m.ipc} images per class`
      : `${m.parameterization.kind} parameterization decoded to ${m.decodedPerClass} images per class (storage ${m.storage.imagesEquivalent.toFixed(2)} images-equivalent, budget ${m.storage.budgetImages})`;
  const soft = art.labelTargets
    ? ` (learned regression targets, trained with --target-loss ${targetLoss})`
    : m.labels === 'soft'
      ? ' (trained with soft cross-entropy)'
      : '';
  out.info(
    `Evaluating ${artifactDir}: ${m.method} on ${dataset.name}, ${stored}, ${m.labels} labels${soft}${art.lr ? `, learned lr ${art.lr.toPrecision(4)}` : ''}`,
  );
  models.forEach((m, i) =>
    out.info(
      `Protocol (${m}): ${protocols[i].epochs} epochs, lr ${art.lr ?? protocols[i].lr}, augmentation ${protocols[i].augment}, ${protocols[i].precision}; ${o.runs} networks`,
    ),
  );
  // Progress counts epochs: each network trains epochs 0..E, the full-data one over the whole train split.
  const fullData = o.baselines && o.fullData !== false;
  const perNetwork = protocols.map((p) => p.epochs + 1);
  const perModel = (i: number) =>
    o.runs * perNetwork[i] * (o.baselines ? 2 : 1) + (fullData ? o.fullEpochs + 1 : 0);
  const total = models.reduce((sum, _m, i) => sum + perModel(i), 0);
  const what = [
    `${o.runs} network(s) per model on the set`,
    o.baselines ? `${o.runs} on random real subsets of the same size (cached after the first time)` : '',
    fullData
      ? `1 on the full training set (${o.fullEpochs} epochs over ${dataset.train.images.size(0)} images, cached afterwards; --no-full-data skips it)`
      : '',
  ].filter(Boolean);
  out.info(`Training ${what.join(', ')}; ${models.length} model(s)`);
  const bar = out.progress('evaluating (epochs)', total);
  let done = 0;
  const advance = (to: number, status: string) => {
    done = to;
    bar.update(done, { status });
  };
  const onRun = (model: string, run: number, acc: number) => {
    advance(done, `${model} #${run + 1}: ${pct(acc)}%`);
    out.event('run', { model, run, accuracy: acc });
  };
  const onEpoch = (model: string, run: number, epoch: number) =>
    advance(done + 1, `${model} #${run + 1} epoch ${epoch}`);
  const { own: set, created } = storedTrainSets(art, targetLoss);
  // The same derivation as distill's final evaluation (eval/evaluate.ts evaluationSeed).
  const runSeed = o.seed ?? art.meta.seed;
  const iterations = (art.meta.config as { iterations?: unknown }).iterations;
  const setSeed = evaluationSeed(runSeed, typeof iterations === 'number' ? iterations : 0);
  const distilled: Record<string, Score> = {};
  const random: Record<string, Score> = {};
  const full: Record<string, Score> = {};
  let start = 0;
  models.forEach((m, i) => {
    const opts = { models: [m], runs: o.runs, protocol: protocols[i], seed: runSeed, onRun, onEpoch };
    Object.assign(distilled, evaluateSet(dataset, set, { ...opts, seed: setSeed }));
    const phase = o.runs * perNetwork[i];
    if (o.baselines) {
      // A cached baseline trains nothing: the bar jumps over it.
      Object.assign(random, randomSubsetBaseline(dataset, art.meta.ipc, opts));
      advance(start + 2 * phase, `${m}: random subsets done`);
    }
    // The full-data network does not depend on the artifact: one seed for all, so it is cached once.
    if (fullData)
      Object.assign(
        full,
        fullDataBaseline(dataset, { ...opts, seed: o.seed ?? 0, runs: 1, fullEpochs: o.fullEpochs }),
      );
    start += perModel(i);
    advance(start, `${m} done`);
  });
  bar.stop();
  const lines = [
    `| model | ${art.meta.method} (ipc ${art.meta.ipc}${art.meta.labels === 'soft' ? ', soft labels: soft cross-entropy' : ''}) | random subsets (ipc ${art.meta.ipc}, one per network) | full data (${o.fullEpochs} epochs, 1 network) |`,
    '|---|---|---|---|',
  ];
  for (const m of models) lines.push(`| ${m} | ${fmt(distilled[m])} | ${fmt(random[m])} | ${fmt(full[m])} |`);
  out.result(lines.join('\n'), {
    artifact: artifactDir,
    protocol: Object.fromEntries(models.map((m, i) => [m, protocols[i]])),
    ...(art.labelTargets ? { targetLoss } : {}),
    evaluationSeed: setSeed,
    distilled,
    randomSubset: o.baselines ? random : null,
    fullData: fullData ? full : null,
  });
  try {
    const saved = saveEvaluation(artifactDir, {
      models,
      protocols: Object.fromEntries(models.map((m, i) => [m, protocols[i]])),
      ...(art.labelTargets ? { targetLoss } : {}),
      seed: runSeed,
      runs: o.runs,
      distilled,
      randomSubset: o.baselines ? random : null,
      fullData: fullData ? { epochs: o.fullEpochs, scores: full } : null,
    });
    out.info(`Saved in ${saved}`);
  } catch (e) {
    // The scores are printed above; a read-only artifact only loses the saved copy.
    console.error(
      `distillery: warning: results not saved in ${artifactDir}: ${e instanceof Error ? e.message : String(e)}`,
    );
  }
  for (const t of created) t.dispose();
  for (const t of [art.images, art.labels, probe.images, probe.labels]) t.dispose();
  art.labelTargets?.dispose();
  probe.labelTargets?.dispose();
  dataset.dispose();
}
