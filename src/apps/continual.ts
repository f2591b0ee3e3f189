// Class-incremental continual learning with a small memory, as the DC / DSA / DM papers evaluate it
// (GDumb-style): the classes arrive in S stages; at each stage the memory gains `ipc` images for every
// new class (a random subset, herding, or a set distilled from that stage's data only); a network is
// trained from scratch on the whole memory and tested on the test images of every class seen so far.
// Distillation and selection at stage s see only stage s's classes (a class subset of the dataset),
// never a later stage's.
import * as E from '../engine/index.js';
import { classSubset, type Dataset } from '../data/dataset.js';
import { AppError, buildSet, checkSources } from './sets.js';
import { createNetwork } from '../models/index.js';
import { defaultProtocol, summarize, trainAndTest, type Protocol, type Score } from '../eval/index.js';
import '../distill/methods/index.js';

/** A bad continual-learning setting. */
export class ContinualError extends AppError {
  constructor(message: string) {
    super(message);
    this.name = 'ContinualError';
  }
}

export interface ContinualOptions {
  stages: number;
  ipc: number;
  /** 'random', 'herding', or a method name (distilled per stage). */
  memories: string[];
  /** Runs (each with its own class order and draws); mean +- std over them. */
  runs: number;
  seed: number;
  /** The protocol of the networks trained on the memory. */
  epochs: number;
  precision?: 'float32' | 'bfloat16';
  model?: string;
  /** Distillation: preset entry and config overrides (e.g. { iterations: 100 }). */
  preset?: 'quick' | 'paper' | null;
  overrides?: Record<string, unknown>;
  /** Epochs of herding's feature network on each stage's data. */
  featureEpochs?: number;
  /** Run directories of the per-stage distillations go under here. */
  workDir: string;
  log?: (line: string) => void;
}

export interface ContinualResult {
  dataset: string;
  stages: number;
  ipc: number;
  /** Per run: the class order, split into stages. */
  stageClasses: number[][][];
  protocol: Protocol & { model: string };
  /** Per memory: accuracy after each stage, mean +- std over runs (fractions). */
  accuracy: Record<string, Score[]>;
}

/** The classes of each stage: a seeded permutation cut into `stages` near-equal parts. */
export function stagePlan(numClasses: number, stages: number, seed: number): number[][] {
  if (!Number.isInteger(stages) || stages < 1 || stages > numClasses)
    throw new ContinualError(`--stages must be between 1 and the ${numClasses} classes, got ${stages}`);
  const order = E.tidy(() => E.randperm(numClasses, { generator: new E.Generator(seed) }).toNumbers());
  return Array.from({ length: stages }, (_, s) =>
    order.slice(Math.floor((s * numClasses) / stages), Math.floor(((s + 1) * numClasses) / stages)),
  );
}

/** The new memory for one stage: images and global labels of `ipc` per stage class. */
async function stageMemory(
  kind: string,
  dataset: Dataset,
  classes: number[],
  o: ContinualOptions,
  gen: E.Generator,
  runDir: string,
): Promise<{ images: E.Tensor; labels: number[] }> {
  const stage = classSubset(dataset, classes);
  try {
    const set = await buildSet(kind, stage, o.ipc, gen, {
      runDir,
      preset: o.preset,
      overrides: o.overrides,
      model: o.model,
      featureEpochs: o.featureEpochs,
    });
    // Soft labels (a method that learns them) count by their most likely class here: the memory's
    // stages have different class sets, so a stage's soft labels do not carry over.
    const local = E.tidy(() => (set.labels.ndim === 2 ? set.labels.argmax(1) : set.labels).toNumbers());
    const images = set.images;
    for (const t of [set.labels, set.labelTargets]) t?.dispose();
    return { images, labels: local.map((y) => classes[y]) };
  } finally {
    stage.dispose();
  }
}

/** The test images (and labels) of the classes seen so far. */
export function seenTest(dataset: Dataset, seen: readonly number[]): { images: E.Tensor; labels: E.Tensor } {
  const y = dataset.test.labels.toNumbers();
  const keep = y.flatMap((c, i) => (seen.includes(c) ? [i] : []));
  return dataset.gather(keep, dataset.test);
}

/** Trains a fresh network on the memory and tests it on the seen classes' test images. */
function trainOnMemory(
  dataset: Dataset,
  images: E.Tensor[],
  labels: number[],
  seen: number[],
  protocol: Protocol,
  model: string,
  gen: E.Generator,
): number {
  const net = createNetwork(model, dataset.imageShape, dataset.numClasses);
  const test = seenTest(dataset, seen);
  const train = { images: E.cat(images, 0), labels: E.tensor(Int32Array.from(labels)).long() };
  try {
    return trainAndTest(net, train, test, protocol, gen).testAccuracy;
  } finally {
    for (const t of [train.images, train.labels, test.images, test.labels]) t.dispose();
  }
}

/**
 * Runs the class-incremental protocol for every memory kind.
 *
 * @example await continualLearning(loadDataset('mnist'), { stages: 5, ipc: 10, memories: ['random', 'dm'], runs: 3, seed: 0, epochs: 300, workDir: 'runs/continual' })
 */
export async function continualLearning(dataset: Dataset, o: ContinualOptions): Promise<ContinualResult> {
  checkSources(o.memories, { artifacts: false, what: 'continual --memories' });
  if (!Number.isInteger(o.ipc) || o.ipc < 1 || o.ipc > dataset.smallestClassSize)
    throw new ContinualError(`--ipc must be between 1 and ${dataset.smallestClassSize}, got ${o.ipc}`);
  const log = o.log ?? (() => {});
  const model = o.model ?? 'ConvNet';
  const protocol = defaultProtocol(dataset.name, { epochs: o.epochs, precision: o.precision });
  const plans = Array.from({ length: o.runs }, (_, r) => stagePlan(dataset.numClasses, o.stages, o.seed + r));
  const perRun: Record<string, number[][]> = Object.fromEntries(o.memories.map((m) => [m, []]));
  for (let r = 0; r < o.runs; r++) {
    for (const kind of o.memories) {
      const images: E.Tensor[] = [];
      const labels: number[] = [];
      const accs: number[] = [];
      const seen: number[] = [];
      for (let s = 0; s < o.stages; s++) {
        const classes = plans[r][s];
        // Each (run, memory, stage) has its own stream: memories never shift each other's draws.
        const gen = new E.Generator((o.seed + r) * 1000 + s * 10 + o.memories.indexOf(kind));
        const mem = await stageMemory(
          kind,
          dataset,
          classes,
          o,
          gen,
          `${o.workDir}/run${r}-${kind}-stage${s}`,
        );
        images.push(mem.images);
        labels.push(...mem.labels);
        seen.push(...classes);
        const acc = trainOnMemory(
          dataset,
          images,
          labels,
          seen,
          protocol,
          model,
          new E.Generator(o.seed * 7 + r * 100 + s),
        );
        accs.push(acc);
        log(
          `run ${r} ${kind} stage ${s + 1}/${o.stages} (classes ${seen.join(', ')}): ${(100 * acc).toFixed(2)}%`,
        );
      }
      for (const t of images) t.dispose();
      perRun[kind].push(accs);
    }
  }
  const accuracy = Object.fromEntries(
    o.memories.map((m) => [
      m,
      Array.from({ length: o.stages }, (_, s) => summarize(perRun[m].map((a) => a[s]))),
    ]),
  );
  return {
    dataset: dataset.name,
    stages: o.stages,
    ipc: o.ipc,
    stageClasses: plans,
    protocol: { ...protocol, model },
    accuracy,
  };
}
