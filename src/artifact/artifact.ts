// The distilled-set artifact: a directory anyone can load without Distillery.
//   synthetic.safetensors  images [M, C, H, W] in model-input space (decoded: what a network trains
//                          on); labels (int64 [M] or float [M, classes] probabilities); optional
//                          scalar `lr`; the parameterization's stored tensors (param.<name>) and
//                          learned label logits (labelLogits) or KRR regression targets (labelTargets,
//                          whose argmax is `labels`); ZCA matrices (preprocessing.zca.*)
//   meta.json              format version, dataset, classes, preprocessing, ipc (the storage budget
//                          in images per class), decodedPerClass, parameterization (kind, settings),
//                          storage (floats, bytes, images-equivalent), method, config, seed, versions,
//                          metrics
//   grid.png               de-normalised decoded images, one row per class
// Every file is written atomically; loading validates all of it, and for a factorised
// parameterization decodes the stored tensors and checks them against the saved images.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import * as E from '../engine/index.js';
import { Preprocessing, type PreprocessingSpec } from '../data/preprocess.js';
import type { Dataset } from '../data/dataset.js';
import { makeDirectory, writeFileAtomic } from '../engine/files.js';
import { versions } from '../util/version.js';
import {
  resolveParameterization,
  restoreParameterization,
  storageInfo,
  storedFloats,
  type Parameterization,
  type StorageInfo,
  type ParameterizationConfig,
} from '../param/index.js';
import { GRID_COLUMNS, gridImages, gridPng } from './grid.js';

export const ARTIFACT_FORMAT = 'distillery-synthetic';
/** 2: parameterizations (param.* tensors, decodedPerClass, storage); version 1 artifacts still load. */
export const ARTIFACT_VERSION = 2;

export interface ArtifactMeta {
  format: typeof ARTIFACT_FORMAT;
  formatVersion: number;
  dataset: { name: string; classes: string[]; imageShape: [number, number, number]; checksum: string };
  preprocessing: PreprocessingSpec;
  /** The storage budget in images per class (the decoded set may hold more images). */
  ipc: number;
  /** Decoded training images per class (ipc for pixels). */
  decodedPerClass: number;
  parameterization: ParameterizationConfig;
  storage: StorageInfo;
  labels: 'hard' | 'soft';
  /** Soft labels that were learned as logits (stored as `labelLogits` too). */
  learnedLabels: boolean;
  learnedLr: number | null;
  method: string;
  config: Record<string, unknown>;
  seed: number;
  /** The model the set was distilled with (evaluations default to it). */
  model: string;
  versions: Record<string, string>;
  metrics: Record<string, unknown>;
  createdAt: string;
}

export interface Artifact {
  meta: ArtifactMeta;
  images: E.Tensor;
  labels: E.Tensor;
  lr: number | null;
  /** Learned regression targets of a KRR method [M, classes] (`labels` is their argmax), if any. */
  labelTargets?: E.Tensor;
  preprocessing: Preprocessing;
}

export class ArtifactError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ArtifactError';
  }
}

export interface SaveOptions {
  method: string;
  config: Record<string, unknown>;
  seed: number;
  model: string;
  metrics?: Record<string, unknown>;
  lr?: number | null;
  /** The storage budget in images per class; default: images / classes (pixels). */
  ipc?: number;
  /** The parameterization the images decode from (default: pixels, the images themselves). */
  parameterization?: Parameterization;
  /** Learned label logits (their softmax is `labels`). */
  labelLogits?: E.Tensor;
  /** Learned regression targets of a KRR method (`labels` is their argmax). */
  labelTargets?: E.Tensor;
}

function storageOf(
  o: SaveOptions,
  dataset: Dataset,
  images: E.Tensor,
  labels: E.Tensor,
  ipc: number,
): StorageInfo {
  const labelFloats = (labels.dtype === 'int64' ? 0 : labels.numel) + (o.labelTargets?.numel ?? 0);
  const stored = o.parameterization ? storedFloats(o.parameterization) : images.numel;
  const shape = { imageShape: dataset.imageShape, classes: dataset.numClasses, ipc };
  return storageInfo(stored + labelFloats + (o.lr != null ? 1 : 0), shape);
}

/** Writes an artifact for `images`/`labels` (classes in order, ipc each) distilled from `dataset`. */
export function saveArtifact(
  dir: string,
  dataset: Dataset,
  images: E.Tensor,
  labels: E.Tensor,
  o: SaveOptions,
): ArtifactMeta {
  const m = images.size(0);
  const k = dataset.numClasses;
  if (m % k !== 0) throw new ArtifactError(`${m} images are not a whole number per class for ${k} classes`);
  try {
    makeDirectory(dir);
  } catch (e) {
    throw new ArtifactError(`artifact: ${e instanceof Error ? e.message : String(e)}`);
  }
  const decodedPerClass = m / k;
  const ipc = o.ipc ?? decodedPerClass;
  const p = o.parameterization;
  const meta: ArtifactMeta = {
    format: ARTIFACT_FORMAT,
    formatVersion: ARTIFACT_VERSION,
    dataset: {
      name: dataset.name,
      classes: dataset.classes,
      imageShape: dataset.imageShape,
      checksum: dataset.info.checksum,
    },
    preprocessing: dataset.preprocessing.toSpec(),
    ipc,
    decodedPerClass,
    parameterization: p ? { kind: p.kind, ...p.settings } : { kind: 'pixels' },
    storage: storageOf(o, dataset, images, labels, ipc),
    labels: labels.dtype === 'int64' ? 'hard' : 'soft',
    learnedLabels: o.labelLogits !== undefined || o.labelTargets !== undefined,
    learnedLr: o.lr ?? null,
    method: o.method,
    config: o.config,
    seed: o.seed,
    model: o.model,
    versions: versions(),
    metrics: o.metrics ?? {},
    createdAt: new Date().toISOString(),
  };
  E.tidy(() => {
    const tensors: Record<string, E.Tensor> = {
      images: images.detach().contiguous(),
      labels: labels.detach().contiguous(),
    };
    if (o.lr != null) tensors.lr = E.tensor(o.lr, { shape: [] });
    if (p && p.kind !== 'pixels')
      for (const t of p.tensors) tensors[`param.${t.name}`] = t.tensor.detach().contiguous();
    if (o.labelLogits) tensors.labelLogits = o.labelLogits.detach().contiguous();
    if (o.labelTargets) tensors.labelTargets = o.labelTargets.detach().contiguous();
    for (const [name, t] of Object.entries(dataset.preprocessing.tensors()))
      tensors[`preprocessing.${name}`] = t;
    // The file alone can be de-normalised and read: pixels = images x std + mean (per channel, unless
    // ZCA-whitened: then preprocessing.zca.* holds the inverse), labels name `classes`.
    const spec = dataset.preprocessing.toSpec();
    E.saveSafetensors(join(dir, 'synthetic.safetensors'), tensors, {
      format: ARTIFACT_FORMAT,
      formatVersion: String(ARTIFACT_VERSION),
      mean: JSON.stringify(spec.mean),
      std: JSON.stringify(spec.std),
      zca: String(Boolean(spec.zca)),
      classes: JSON.stringify(dataset.classes),
      dataset: dataset.name,
    });
    writeFileAtomic(
      join(dir, 'grid.png'),
      gridPng(
        dataset.preprocessing.invert(gridImages(images.detach(), k, decodedPerClass)),
        k,
        Math.min(decodedPerClass, GRID_COLUMNS),
      ),
    );
  });
  writeFileAtomic(join(dir, 'meta.json'), `${JSON.stringify(meta, null, 2)}\n`);
  return meta;
}

const positiveInt = z.number().int().positive();
/** What loadArtifact reads from meta.json, checked before use (other fields pass through). */
const metaSchema = z
  .object({
    format: z.string(),
    formatVersion: positiveInt,
    dataset: z
      .object({
        name: z.string().min(1),
        classes: z.array(z.string()).min(1),
        imageShape: z.tuple([positiveInt, positiveInt, positiveInt]),
        checksum: z.string(),
      })
      .passthrough(),
    preprocessing: z
      .object({
        mean: z.array(z.number()).min(1),
        std: z.array(z.number().positive()).min(1),
        zca: z.object({ eps: z.number().nonnegative() }).passthrough().nullable().optional(),
      })
      .passthrough(),
    ipc: positiveInt,
    decodedPerClass: positiveInt.optional(),
    method: z.string(),
    seed: z.number().int().nonnegative(),
  })
  .passthrough();

function checkMeta(dir: string, raw: unknown): ArtifactMeta {
  const r = metaSchema.safeParse(raw);
  if (r.success) return raw as ArtifactMeta;
  const issue = r.error.issues[0];
  const where = issue.path.length ? issue.path.join('.') : 'its top level';
  fail(dir, `meta.json ${where}: ${issue.message} (the file was edited or written by another tool)`);
}

function fail(dir: string, what: string): never {
  throw new ArtifactError(`${dir} is not a valid Distillery artifact: ${what}`);
}

/** A factorised artifact's stored tensors must decode to its saved images (what evaluation trains on). */
function checkDecodes(
  dir: string,
  meta: ArtifactMeta,
  tensors: Record<string, E.Tensor>,
  images: E.Tensor,
): void {
  if (meta.parameterization.kind === 'pixels') return;
  const shape = { imageShape: meta.dataset.imageShape, classes: meta.dataset.classes.length, ipc: meta.ipc };
  let decoded: E.Tensor;
  try {
    const { kind, settings } = resolveParameterization(meta.parameterization, shape);
    // The restored parameterization and its copies are freed with the scope; only the decode is kept.
    decoded = E.tidy(() => {
      const own: Record<string, E.Tensor> = {};
      for (const [name, t] of Object.entries(tensors))
        if (name.startsWith('param.')) own[name.slice(6)] = t.clone();
      return E.noGrad(() => restoreParameterization(kind, shape, settings, own).decode().detach());
    });
  } catch (e) {
    fail(
      dir,
      `its ${meta.parameterization.kind} parameterization does not load (${e instanceof Error ? e.message : String(e)})`,
    );
  }
  const off = E.tidy(() => {
    const same =
      decoded.shape.length === images.shape.length && decoded.shape.every((v, i) => v === images.shape[i]);
    return same ? decoded.sub(images).abs().max().item() : Infinity;
  });
  decoded.dispose();
  if (!(off <= 1e-4))
    fail(
      dir,
      `its ${meta.parameterization.kind} tensors do not decode to the saved images (max difference ${off})`,
    );
}

/** Loads and validates an artifact; with `dataset`, also checks it was made from that data and preprocessing. */
export function loadArtifact(dir: string, dataset?: Dataset): Artifact {
  const metaPath = join(dir, 'meta.json');
  const tensorPath = join(dir, 'synthetic.safetensors');
  if (!existsSync(metaPath) && existsSync(join(dir, 'run.json')))
    fail(dir, `it is a run directory; its artifact is ${join(dir, 'artifact')}`);
  for (const p of [metaPath, tensorPath]) if (!existsSync(p)) fail(dir, `${p} is missing`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(metaPath, 'utf8'));
  } catch (e) {
    fail(dir, `meta.json is not JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  if ((raw as { format?: unknown } | null)?.format !== ARTIFACT_FORMAT)
    fail(
      dir,
      `meta.json format is ${JSON.stringify((raw as { format?: unknown } | null)?.format)}, expected '${ARTIFACT_FORMAT}'`,
    );
  const meta = checkMeta(dir, raw);
  if (meta.format !== ARTIFACT_FORMAT)
    fail(dir, `meta.json format is ${JSON.stringify(meta.format)}, expected '${ARTIFACT_FORMAT}'`);
  if (meta.formatVersion > ARTIFACT_VERSION)
    fail(
      dir,
      `format version ${meta.formatVersion} is newer than this Distillery reads (${ARTIFACT_VERSION}); upgrade Distillery`,
    );
  const { tensors } = E.loadSafetensors(tensorPath);
  const { images, labels } = tensors;
  if (!images || !labels) fail(dir, 'synthetic.safetensors needs tensors `images` and `labels`');
  const k = meta.dataset.classes.length;
  const [c, h, w] = meta.dataset.imageShape;
  const shape = images.shape;
  // Version 1 artifacts are pixels: decodedPerClass = ipc.
  meta.decodedPerClass ??= meta.ipc;
  meta.parameterization ??= { kind: 'pixels' };
  const per = meta.decodedPerClass;
  if (shape.length !== 4 || shape[1] !== c || shape[2] !== h || shape[3] !== w || shape[0] !== k * per) {
    fail(
      dir,
      `images have shape [${shape.join(', ')}], meta.json says ${per} per class x ${k} classes of [${c}, ${h}, ${w}]`,
    );
  }
  checkDecodes(dir, meta, tensors, images);
  const hard = labels.dtype === 'int64';
  if (
    hard
      ? labels.ndim !== 1 || labels.size(0) !== shape[0]
      : labels.ndim !== 2 || labels.size(0) !== shape[0] || labels.size(1) !== k
  ) {
    fail(
      dir,
      `labels of shape [${labels.shape.join(', ')}] (${labels.dtype}) do not fit ${shape[0]} images of ${k} classes`,
    );
  }
  if (hard && E.tidy(() => labels.lt(0).logicalOr(labels.ge(k)).any().item()))
    fail(dir, `labels outside 0..${k - 1}`);
  if (E.tidy(() => images.isfinite().logicalNot().any().item()))
    fail(dir, 'images contain NaN or infinite values');
  if (!hard && E.tidy(() => labels.isfinite().logicalNot().any().item()))
    fail(dir, 'soft labels contain NaN or infinite values');
  const zca: Record<string, E.Tensor> = {};
  for (const [name, t] of Object.entries(tensors))
    if (name.startsWith('preprocessing.')) zca[name.slice('preprocessing.'.length)] = t;
  const preprocessing = Preprocessing.fromSpec(meta.preprocessing, zca);
  if (dataset) {
    if (dataset.name !== meta.dataset.name) {
      throw new ArtifactError(
        `artifact ${dir} was distilled from '${meta.dataset.name}', not '${dataset.name}': evaluate it on ${meta.dataset.name}`,
      );
    }
    if (!dataset.preprocessing.equals(preprocessing)) {
      throw new ArtifactError(
        `artifact ${dir} was made with preprocessing ${preprocessing.describe()}, but the dataset is loaded with ${dataset.preprocessing.describe()}; ` +
          "load the dataset with the artifact's preprocessing (Distillery does this by default) instead of overriding it",
      );
    }
  }
  const lr = tensors.lr ? tensors.lr.item() : null;
  if (lr !== null && !Number.isFinite(lr))
    fail(dir, `its learned learning rate is ${lr}; the run diverged, so distil again with a lower --lr`);
  const labelTargets = tensors.labelTargets;
  if (labelTargets) {
    if (labelTargets.ndim !== 2 || labelTargets.size(0) !== shape[0] || labelTargets.size(1) !== k)
      fail(
        dir,
        `labelTargets of shape [${labelTargets.shape.join(', ')}] do not fit ${shape[0]} images of ${k} classes`,
      );
    if (E.tidy(() => labelTargets.isfinite().logicalNot().any().item()))
      fail(dir, 'labelTargets contain NaN or infinite values');
  }
  return { meta, images, labels, lr, labelTargets, preprocessing };
}
