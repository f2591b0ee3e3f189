// The small training sets the applications compare, built one way for all of them: a random real
// subset, a herding coreset, a set distilled on the fly by a registered method, or an artifact that
// already exists. Every set is made from the dataset the caller passes (a stage's classes, the
// members of a privacy split, a search's training part), so nothing outside it is ever read.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as E from '../engine/index.js';
import type { Dataset } from '../data/dataset.js';
import { loadArtifact } from '../artifact/artifact.js';
import { distill } from '../distill/api.js';
import { METHODS } from '../distill/registry.js';
import { selectCoreset, trainFeatureNet, disposeFeatureNet } from '../coreset/index.js';
import type { StoredSet } from '../eval/index.js';
import '../distill/methods/index.js';

export class AppError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AppError';
  }
}

export interface SetBuildOptions {
  /** Distillation: preset entry and config overrides (e.g. { iterations: 100 }). */
  preset?: 'quick' | 'paper' | null;
  overrides?: Record<string, unknown>;
  /** The model distillation and herding's feature network use (default: each one's default). */
  model?: string;
  /** Epochs of herding's feature network on the given data. */
  featureEpochs?: number;
  /** A distillation's run directory. */
  runDir: string;
}

/** What a set source names: 'random', 'herding', a method, or an artifact directory. */
export type SourceKind = 'random' | 'herding' | 'method' | 'artifact';

export function sourceKind(source: string): SourceKind {
  if (source === 'random' || source === 'herding') return source;
  if (METHODS.some((m) => m.name === source)) return 'method';
  if (existsSync(join(source, 'meta.json'))) return 'artifact';
  return 'method'; // reported by checkSources
}

/**
 * Checks set sources before anything runs: each is random, herding, a method name or (where the
 * application can take one) an artifact directory.
 */
export function checkSources(
  sources: readonly string[],
  o: { artifacts: boolean; what: string; extras?: readonly string[] },
): void {
  if (sources.length === 0) throw new AppError(`${o.what}: no sets given`);
  if (new Set(sources).size !== sources.length) throw new AppError(`${o.what}: a set is named twice`);
  for (const s of sources) {
    if (o.extras?.includes(s)) continue;
    const kind = sourceKind(s);
    if (kind === 'artifact' && !o.artifacts)
      throw new AppError(
        `${o.what}: '${s}' is an artifact, but this application must make its sets from its own split of the data; name a method instead`,
      );
    if (kind === 'method' && !METHODS.some((m) => m.name === s))
      throw new AppError(
        `${o.what}: unknown set '${s}': ${[...(o.extras ?? []), 'random', 'herding'].join(', ')}, a method (${METHODS.map((m) => m.name).join(', ')})${o.artifacts ? ' or an artifact directory' : ''}`,
      );
  }
}

/** Random or herding: `ipc` real images of each class of `dataset`. */
function selectedSet(
  kind: 'random' | 'herding',
  dataset: Dataset,
  ipc: number,
  gen: E.Generator,
  o: SetBuildOptions,
): StoredSet {
  const feature =
    kind === 'herding'
      ? trainFeatureNet(dataset, gen, {
          epochs: o.featureEpochs ?? 5,
          ...(o.model ? { model: o.model } : {}),
        })
      : undefined;
  try {
    const split = dataset.gather(selectCoreset(kind, dataset, ipc, gen, feature));
    return { images: split.images, labels: split.labels, lr: null };
  } finally {
    if (feature) disposeFeatureNet(feature);
  }
}

/**
 * Builds the set `source` names from `dataset` with `ipc` images per class (or the artifact's own).
 * The caller owns the returned tensors.
 *
 * @example const set = await buildSet('dm', members, 10, new E.Generator(0), { runDir: 'runs/privacy/dm', preset: 'quick' });
 */
export async function buildSet(
  source: string,
  dataset: Dataset,
  ipc: number,
  gen: E.Generator,
  o: SetBuildOptions,
): Promise<StoredSet> {
  const kind = sourceKind(source);
  if (kind === 'random' || kind === 'herding') return selectedSet(kind, dataset, ipc, gen, o);
  if (kind === 'artifact') {
    const art = loadArtifact(source, dataset);
    if (art.meta.dataset.classes.length !== dataset.numClasses)
      throw new AppError(
        `artifact ${source} has ${art.meta.dataset.classes.length} classes, ${dataset.name} has ${dataset.numClasses}`,
      );
    return { images: art.images, labels: art.labels, lr: art.lr, labelTargets: art.labelTargets };
  }
  const r = await distill(
    {
      ...(o.overrides ?? {}),
      method: source,
      dataset: dataset.name,
      ipc,
      seed: gen.seed,
      evalRuns: 0,
      ...(o.model ? { model: o.model } : {}),
      ...(o.preset ? { preset: o.preset } : {}),
    },
    { runDir: o.runDir, dataset, overwrite: true },
  );
  if (!r.artifact) throw new AppError(`distilling '${source}' into ${o.runDir} was interrupted`);
  const a = r.artifact;
  return { images: a.images, labels: a.labels, lr: a.lr, labelTargets: a.labelTargets };
}

/** Releases a built set's tensors. */
export function disposeSet(set: StoredSet): void {
  for (const t of [set.images, set.labels, set.labelTargets]) t?.dispose();
}
