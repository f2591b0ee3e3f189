// Expert trajectories (MTT's buffer.py): N networks trained on the full training
// set, with their flat parameters saved before training and after every epoch.
//
//   <dir>/manifest.json                         dataset, preprocessing, model, layout, training settings
//   <dir>/expert-003/epoch-012.safetensors      `params` [P] after 12 epochs; `generator` state
//
// Each epoch file is written atomically once the epoch is over, so an interrupted
// run resumes from the last finished epoch of each expert (the generator state in
// the file continues the random stream exactly).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as E from '../engine/index.js';
import { DSA, defaultStrategy } from '../augment/index.js';
import type { Dataset } from '../data/dataset.js';
import { Preprocessing, type PreprocessingSpec } from '../data/preprocess.js';
import { trainEpoch, type GSAMSettings, type TrainingPrecision } from '../eval/index.js';
import {
  createNetwork,
  flattenParams,
  paramLayout,
  sameLayout,
  unflattenParams,
  type ParamLayout,
} from '../models/index.js';
import { makeDirectory, writeFileAtomic } from '../engine/files.js';
import type { Collective } from './method.js';

export const EXPERTS_FORMAT = 'distillery-experts';

export interface ExpertTraining {
  model: string;
  experts: number;
  epochs: number;
  lr: number;
  batchSize: number;
  /** Train with DSA (the reference default). */
  augment: boolean;
  seed: number;
  /**
   * Arithmetic of the training steps (eval/protocol.ts): float32 as the reference, or bfloat16
   * mixed precision (bfloat16 forward/backward, float32 weights and updates). Default float32.
   */
  precision?: TrainingPrecision;
  /**
   * Train along GSAM's direction instead of the plain gradient (FTD's flat trajectories: rho 0.01,
   * alpha 0.4, adaptive); absent: plain SGD as MTT's buffer.py.
   */
  gsam?: GSAMSettings;
}

export interface ExpertManifest {
  format: typeof EXPERTS_FORMAT;
  formatVersion: 1;
  dataset: { name: string; checksum: string; imageShape: [number, number, number]; numClasses: number };
  preprocessing: PreprocessingSpec;
  model: string;
  layout: ParamLayout;
  training: Omit<ExpertTraining, 'model' | 'precision'> & {
    momentum: 0;
    dsaStrategy: string | null;
    precision: TrainingPrecision;
    /** GSAM's settings when the experts were trained with it (FTD); absent: plain SGD. */
    gsam?: GSAMSettings;
  };
}

export class ExpertError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ExpertError';
  }
}

const pad = (n: number) => String(n).padStart(3, '0');
export const expertEpochFile = (dir: string, expert: number, epoch: number) =>
  join(dir, `expert-${pad(expert)}`, `epoch-${pad(epoch)}.safetensors`);

function buildManifest(dataset: Dataset, o: ExpertTraining): ExpertManifest {
  const net = createNetwork(o.model, dataset.imageShape, dataset.numClasses);
  const state = net.init(new E.Generator(0));
  const layout = paramLayout(state);
  for (const t of state.params.values()) t.dispose();
  const { model, precision, gsam, ...training } = o;
  return {
    format: EXPERTS_FORMAT,
    formatVersion: 1,
    dataset: {
      name: dataset.name,
      checksum: dataset.info.checksum,
      imageShape: dataset.imageShape,
      numClasses: dataset.numClasses,
    },
    preprocessing: dataset.preprocessing.toSpec(),
    model,
    layout,
    training: {
      ...training,
      momentum: 0,
      dsaStrategy: o.augment ? defaultStrategy(dataset.name) : null,
      precision: precision ?? 'float32',
      // Recorded only for GSAM, so SGD manifests written before the option existed stay equal.
      ...(gsam ? { gsam } : {}),
    },
  };
}

/** Epochs 0..n-1 present for this expert (the count of consecutive epoch files from 0). */
export function finishedEpochs(dir: string, expert: number): number {
  let n = 0;
  while (existsSync(expertEpochFile(dir, expert, n))) n++;
  return n;
}

export interface ExpertHooks {
  onStart?(info: { total: number; done: number }): void;
  onEpoch?(info: { expert: number; epoch: number; loss: number; done: number }): void;
}

/**
 * Trains (or resumes) the experts into `dir`. A directory from an earlier run must
 * hold the same settings; everything already written is kept.
 */
export function trainExperts(
  dataset: Dataset,
  dir: string,
  o: ExpertTraining,
  hooks: ExpertHooks = {},
  world?: Collective,
): void {
  // Data parallel: rank 0 checks and writes the manifest, then expert i trains on rank i mod size
  // (each expert has its own stream, so the files equal one process's).
  const shard = world && world.worldSize > 1 ? world : null;
  if (shard && shard.rank > 0) {
    shard.barrier(); // the manifest is written (a quick step: no risk of the timeout)
    trainShard(dataset, dir, o, hooks, shard);
    return;
  }
  if (o.gsam && !(o.gsam.rho > 0 && o.gsam.alpha >= 0))
    throw new ExpertError(`GSAM needs rho > 0 and alpha >= 0 (got rho ${o.gsam.rho}, alpha ${o.gsam.alpha})`);
  if (o.gsam && createNetwork(o.model, dataset.imageShape, dataset.numClasses).hasBatchNorm)
    throw new ExpertError(
      `GSAM experts need a model without batch norm (got ${o.model}): FTD freezes the running statistics in its second pass, which is not implemented here; use ConvNet (instance norm)`,
    );
  const manifest = buildManifest(dataset, o);
  const manifestPath = join(dir, 'manifest.json');
  if (existsSync(manifestPath)) {
    const old = readManifest(dir);
    // The expert count may change (more experts extend the set, fewer use its first N): each
    // expert has its own random stream, so expert i is the same whatever the count.
    const sameCount = { ...old, training: { ...old.training, experts: manifest.training.experts } };
    const diff = (Object.keys(manifest) as (keyof ExpertManifest)[]).filter(
      (k) => JSON.stringify(sameCount[k]) !== JSON.stringify(manifest[k]),
    );
    if (diff.length)
      throw new ExpertError(
        `${dir} holds experts with different settings (${diff.join(', ')}); use another --out directory`,
      );
  }
  // Unchanged bytes unless the expert count changed.
  makeDirectory(dir);
  writeFileAtomic(manifestPath, `${JSON.stringify(manifest, null, 2)}\n`);
  shard?.barrier();
  // No barrier at the end: ranks with more experts would keep the others waiting past any timeout;
  // the launcher waits for every rank.
  trainShard(dataset, dir, o, hooks, shard);
}

/** Trains this rank's experts (all of them in one process). */
function trainShard(
  dataset: Dataset,
  dir: string,
  o: ExpertTraining,
  hooks: ExpertHooks,
  shard: Collective | null,
): void {
  const manifest = readManifest(dir);
  const mine = (i: number) => !shard || i % shard.worldSize === shard.rank;
  const net = createNetwork(o.model, dataset.imageShape, dataset.numClasses);
  const dsa = manifest.training.dsaStrategy ? new DSA({ strategy: manifest.training.dsaStrategy }) : null;
  const perExpert = o.epochs + 1;
  let done = 0;
  const experts = [...Array(o.experts).keys()].filter(mine);
  for (const i of experts) done += Math.min(perExpert, finishedEpochs(dir, i));
  hooks.onStart?.({ total: experts.length * perExpert, done });
  for (const i of experts) {
    const have = Math.min(perExpert, finishedEpochs(dir, i));
    if (have === perExpert) continue;
    makeDirectory(join(dir, `expert-${pad(i)}`));
    // Each expert has its own stream, so experts are independent of how many came before.
    const gen = new E.Generator(o.seed * 100_003 + i);
    let state;
    if (have === 0) {
      state = net.init(gen);
      saveEpoch(dir, i, 0, state, gen, NaN);
      done++;
      hooks.onEpoch?.({ expert: i, epoch: 0, loss: NaN, done });
    } else {
      const last = E.loadSafetensors(expertEpochFile(dir, i, have - 1)).tensors;
      gen.setState(last.generator);
      const views = unflattenParams(last.params, manifest.layout);
      state = { params: new Map([...views.params].map(([k, v]) => [k, v.clone()])), buffers: new Map() };
    }
    const params = [...state.params.values()].map((p) => p.requiresGrad_());
    const opt = new E.SGD(params, { lr: o.lr });
    for (let epoch = Math.max(1, have); epoch <= o.epochs; epoch++) {
      const loss = trainEpoch(net, state, opt, dataset.train, {
        batchSize: o.batchSize,
        augment: dsa,
        gen,
        precision: manifest.training.precision,
        sharpness: o.gsam,
      });
      if (!Number.isFinite(loss))
        throw new ExpertError(`expert ${i} diverged in epoch ${epoch} (loss ${loss}); lower --lr`);
      saveEpoch(dir, i, epoch, state, gen, loss);
      done++;
      hooks.onEpoch?.({ expert: i, epoch, loss, done });
    }
    for (const t of params) t.dispose();
  }
}

function saveEpoch(
  dir: string,
  expert: number,
  epoch: number,
  state: ReturnType<typeof unflattenParams>,
  gen: E.Generator,
  loss: number,
): void {
  E.tidy(() =>
    E.saveSafetensors(
      expertEpochFile(dir, expert, epoch),
      { params: flattenParams(state), generator: gen.getState() },
      { epoch: String(epoch), trainLoss: String(loss) },
    ),
  );
}

export function readManifest(dir: string): ExpertManifest {
  const path = join(dir, 'manifest.json');
  if (!existsSync(path))
    throw new ExpertError(
      `${dir} holds no expert trajectories (no manifest.json); train them with \`distillery experts\``,
    );
  let m: ExpertManifest;
  try {
    m = JSON.parse(readFileSync(path, 'utf8')) as ExpertManifest;
  } catch (e) {
    throw new ExpertError(`${path} is not JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  if (m.format !== EXPERTS_FORMAT)
    throw new ExpertError(`${path} is not an expert manifest (format ${m.format})`);
  // Manifests written before the precision was recorded were trained in float32.
  m.training.precision ??= 'float32';
  return m;
}

/** Finished expert trajectories, checked against the dataset and model they will be used with. */
export class ExpertSet {
  readonly manifest: ExpertManifest;
  /** Experts with every epoch present. */
  readonly complete: number[];

  constructor(
    readonly dir: string,
    dataset: Dataset,
    model: string,
  ) {
    const m = readManifest(dir);
    const problems: string[] = [];
    if (m.dataset.name !== dataset.name || m.dataset.checksum !== dataset.info.checksum)
      problems.push(
        `they were trained on ${m.dataset.name} (checksum ${m.dataset.checksum}), not on this ${dataset.name}`,
      );
    if (!Preprocessing.fromSpec(m.preprocessing).equals(dataset.preprocessing))
      problems.push("their preprocessing (normalisation / ZCA) differs from this dataset's");
    if (m.model !== model) problems.push(`their model is ${m.model}, not ${model}`);
    else {
      const net = createNetwork(model, dataset.imageShape, dataset.numClasses);
      const state = net.init(new E.Generator(0));
      if (!sameLayout(paramLayout(state), m.layout))
        problems.push(`their parameter layout does not fit ${model}`);
      for (const t of state.params.values()) t.dispose();
    }
    if (problems.length) throw new ExpertError(`cannot use the experts in ${dir}: ${problems.join('; ')}`);
    this.manifest = m;
    this.complete = [];
    for (let i = 0; i < m.training.experts; i++)
      if (finishedEpochs(dir, i) >= m.training.epochs + 1) this.complete.push(i);
    if (this.complete.length === 0)
      throw new ExpertError(
        `${dir} has no finished expert yet; finish them with \`distillery experts\` (it resumes)`,
      );
  }

  get epochs(): number {
    return this.manifest.training.epochs;
  }

  /** Flat parameters of expert `expert` after `epoch` epochs. */
  load(expert: number, epoch: number): E.Tensor {
    if (epoch < 0 || epoch > this.epochs)
      throw new ExpertError(`epoch ${epoch} is outside the trajectories' 0..${this.epochs}`);
    const file = E.loadSafetensors(expertEpochFile(this.dir, expert, epoch));
    file.tensors.generator.dispose();
    return file.tensors.params;
  }
}

const opened = new Map<string, ExpertSet>();

/** The experts in `dir` for this dataset and model, validated once per process (MTT's family, NCFM's pool). */
export function openExperts(dir: string, dataset: Dataset, model: string): ExpertSet {
  const key = `${dir}\0${dataset.info.checksum}\0${model}`;
  let set = opened.get(key);
  if (!set) {
    set = new ExpertSet(dir, dataset, model);
    opened.set(key, set);
  }
  return set;
}
