// The survey's generic loop (Algorithm 1) made explicit:
//   init S; for it in 1..K: L <- method.step(S, T); S <- S - alpha grad_S L
// (a method may update S several times per iteration, e.g. DC's outer loop)
// plus everything every method shares: seeds, the synthetic-set optimizer,
// periodic evaluation, progress, metrics, checkpoints (every N iterations and on
// SIGINT), resume, and the final artifact. A killed run resumed from its last
// checkpoint ends bit-identical to an uninterrupted one: all randomness flows
// from one generator whose state is checkpointed with the images and optimizer.
import { availableParallelism } from 'node:os';
import * as E from '../engine/index.js';
import { saveArtifact } from '../artifact/artifact.js';
import type { Dataset } from '../data/dataset.js';
import { loadDataset } from '../data/registry.js';
import {
  defaultProtocol,
  evaluateSet,
  randomSubsetBaseline,
  type Protocol,
  type Score,
} from '../eval/index.js';
import { createNetwork } from '../models/index.js';
import { versions } from '../util/version.js';
import { resolveConfig, type DistillConfig } from './config.js';
import { getMethod } from './registry.js';
import { RunDir } from './rundir.js';
import { PixelParameterization, SyntheticSet } from './synthetic.js';

export interface DistillHooks {
  onStart?(info: { total: number; startIteration: number; resumed: boolean }): void;
  onIteration?(info: { iteration: number; loss: number; seconds: number }): void;
  onEvaluation?(info: { iteration: number; scores: Record<string, Score> }): void;
  onMessage?(line: string): void;
  /** The iterations are over (evaluation and saving follow); e.g. to restore default Ctrl-C handling. */
  onLoopEnd?(): void;
}

export interface DistillResult {
  runDir: string;
  artifact: string;
  /** How the final set was evaluated (model and protocol). */
  evaluation: { model: string; protocol: Protocol };
  final: Record<string, Score> | null;
  randomSubset: Record<string, Score> | null;
  interrupted: boolean;
}

export class DistillError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DistillError';
  }
}

function sameConfig(a: DistillConfig, b: DistillConfig): string | null {
  const ja = JSON.stringify(a);
  const jb = JSON.stringify(b);
  if (ja === jb) return null;
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]) as Set<keyof DistillConfig>;
  const diff = [...keys].filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k]));
  return diff.map((k) => `${k}: ${JSON.stringify(a[k])} (run) vs ${JSON.stringify(b[k])} (now)`).join('; ');
}

export class Distiller {
  private stopRequested = false;

  constructor(
    readonly config: DistillConfig,
    readonly runDir: RunDir,
    private readonly hooks: DistillHooks = {},
  ) {}

  /** Asks the loop to checkpoint and stop after the current iteration (SIGINT). */
  requestStop(): void {
    this.stopRequested = true;
  }

  async run(o: { resume: boolean; dataset?: Dataset }): Promise<DistillResult> {
    const cfg = this.config;
    const method = getMethod(cfg.method);
    const dataset = o.dataset ?? loadDataset(cfg.dataset, { dataDir: cfg.dataDir, zca: cfg.zca });
    if (cfg.ipc > dataset.smallestClassSize) {
      throw new DistillError(
        `--ipc ${cfg.ipc} is larger than the smallest class of ${dataset.name} (${dataset.smallestClassSize} images)`,
      );
    }
    const evalModel = cfg.evalModel ?? cfg.model;
    // Fail early on an unknown or unfit model spec.
    for (const spec of [cfg.model, evalModel]) createNetwork(spec, dataset.imageShape, dataset.numClasses);
    const gen = new E.Generator(cfg.seed);
    let start = 0;
    let synthetic: SyntheticSet;
    const methodState = new Map<string, E.Tensor>();
    const checkpoint = o.resume ? this.runDir.loadCheckpoint() : null;
    if (o.resume) {
      const record = this.runDir.readRecord();
      // Resolved again, so that defaults added since the run started (e.g. evalModel) compare equal.
      const diff = sameConfig(resolveConfig(record.config as unknown as Record<string, unknown>), cfg);
      if (diff)
        throw new DistillError(`cannot resume ${this.runDir.path} with a different configuration: ${diff}`);
      if (record.dataset.checksum !== dataset.info.checksum) {
        throw new DistillError(
          `cannot resume ${this.runDir.path}: the dataset files changed since the run started (checksum differs)`,
        );
      }
    } else {
      this.runDir.create({
        config: cfg,
        versions: versions(),
        dataset: { name: dataset.name, checksum: dataset.info.checksum, source: dataset.info.source },
        threads: E.getNumThreads(),
        createdAt: new Date().toISOString(),
      });
    }
    if (checkpoint) {
      const images = checkpoint.tensors.images.requiresGrad_();
      const logits = checkpoint.tensors.labelLogits;
      synthetic = new SyntheticSet(
        new PixelParameterization(images),
        logits ?? checkpoint.tensors.labels,
        cfg.ipc,
        dataset.numClasses,
        logits ? 'logits' : undefined,
      );
      gen.setState(checkpoint.tensors['generator.state']);
      if (checkpoint.tensors.lr) synthetic.setLr(checkpoint.tensors.lr.requiresGrad_());
      for (const [k, t] of Object.entries(checkpoint.tensors))
        if (k.startsWith('method.')) methodState.set(k.slice('method.'.length), t);
      start = checkpoint.iteration;
      this.runDir.truncateMetrics(start);
      this.hooks.onMessage?.(`Resuming ${this.runDir.path} from its checkpoint at iteration ${start}`);
    } else {
      if (o.resume) this.runDir.truncateMetrics(0);
      if (!['noise', 'real', 'random'].includes(cfg.init))
        this.hooks.onMessage?.(
          `Init '${cfg.init}' selects with a ConvNet trained as DeepCore trains it (40 epochs on the full training set; cached after the first run)`,
        );
      synthetic = SyntheticSet.create(dataset, cfg.ipc, cfg.init, gen);
    }

    const buildOptimizer = (): E.Optimizer => {
      const params = synthetic.learnable;
      const made =
        cfg.optimizer.kind === 'sgd'
          ? new E.SGD(params, { lr: cfg.optimizer.lr, momentum: cfg.optimizer.momentum })
          : new E.Adam(params, { lr: cfg.optimizer.lr });
      if (checkpoint) {
        const buffers: Record<string, E.Tensor> = {};
        for (const [k, t] of Object.entries(checkpoint.tensors))
          if (k.startsWith('optimizer.')) buffers[k.slice('optimizer.'.length)] = t;
        made.loadStateDict({
          kind: checkpoint.optimizer.kind,
          lr: checkpoint.optimizer.lr,
          step: checkpoint.optimizer.step,
          buffers,
        });
      }
      return made;
    };

    const saveCheckpoint = (iteration: number) => {
      E.tidy(() => {
        const state = opt.stateDict();
        const labelKey = synthetic.labelForm === 'logits' ? 'labelLogits' : 'labels';
        const tensors: Record<string, E.Tensor> = {
          images: synthetic.parameterization.tensors[0].detach(),
          [labelKey]: synthetic.labels.detach(),
          'generator.state': gen.getState(),
        };
        for (const [k, t] of Object.entries(state.buffers)) tensors[`optimizer.${k}`] = t;
        if (synthetic.lr) tensors.lr = synthetic.lr.detach();
        for (const [k, t] of methodState) tensors[`method.${k}`] = t;
        this.runDir.saveCheckpoint({
          iteration,
          tensors,
          optimizer: { kind: state.kind, lr: state.lr, step: state.step },
        });
      });
    };

    const learnedLr = () => (synthetic.lr ? synthetic.lr.item() : undefined);
    const protocol = defaultProtocol(dataset.name, {
      augment: cfg.evalAugment,
      precision: cfg.evalPrecision,
      epochs: cfg.evalEpochs,
      evalModel,
    });
    const evaluate = (iteration: number): Record<string, Score> =>
      E.tidy(() => {
        const { images, labels } = synthetic.decode();
        // Evaluation draws from its own seed, so it never shifts the distillation stream.
        return evaluateSet(
          dataset,
          { images: images.detach(), labels: labels.detach(), lr: learnedLr() },
          { models: [evalModel], runs: cfg.evalRuns, protocol, seed: cfg.seed + 1 + iteration },
        );
      });

    this.hooks.onStart?.({ total: cfg.iterations, startIteration: start, resumed: checkpoint !== null });
    let current = start;
    const update = (grads: (E.Tensor | null)[], loss: number) => {
      if (!Number.isFinite(loss)) {
        for (const g of grads) g?.dispose();
        const good = Math.floor(current / cfg.checkpointEvery) * cfg.checkpointEvery;
        throw new DistillError(
          `the ${cfg.method} loss became ${loss} at iteration ${current + 1}; stopped. The last good checkpoint (iteration ${good}) is in ${this.runDir.path}; lower the learning rate (--lr) and resume or restart`,
        );
      }
      if (grads.length !== opt.params.length) {
        for (const g of grads) g?.dispose();
        throw new DistillError(
          `${cfg.method} passed ${grads.length} gradient(s) for the synthetic set's ${opt.params.length} learnable tensor(s) (one per synthetic.learnable, in order)`,
        );
      }
      opt.step(grads);
      for (const g of grads) g?.dispose();
    };
    const ctx = { dataset, synthetic, gen, model: cfg.model, update, state: methodState };
    if (!checkpoint) method.init?.(ctx, cfg.methodConfig);
    // Built after method.init, which may add learnable tensors (the closures above run only later).
    const opt = buildOptimizer();
    let interrupted = false;
    for (let it = start; it < cfg.iterations; it++) {
      // Yield to the event loop once per iteration so that signals (Ctrl-C) are delivered.
      await new Promise((resolve) => setImmediate(resolve));
      current = it;
      const t0 = performance.now();
      const { loss } = method.step(ctx, cfg.methodConfig, it);
      const iteration = it + 1;
      const seconds = (performance.now() - t0) / 1000;
      this.runDir.log({ iteration, loss, seconds });
      this.hooks.onIteration?.({ iteration, loss, seconds });
      if (cfg.evalEvery > 0 && iteration % cfg.evalEvery === 0 && iteration < cfg.iterations) {
        const scores = evaluate(iteration);
        this.runDir.log({ iteration, eval: scores });
        this.hooks.onEvaluation?.({ iteration, scores });
      }
      if (iteration % cfg.checkpointEvery === 0 || iteration === cfg.iterations) saveCheckpoint(iteration);
      if (this.stopRequested && iteration < cfg.iterations) {
        saveCheckpoint(iteration);
        interrupted = true;
        break;
      }
    }
    this.hooks.onLoopEnd?.();
    if (interrupted) {
      return {
        runDir: this.runDir.path,
        artifact: '',
        evaluation: { model: evalModel, protocol },
        final: null,
        randomSubset: null,
        interrupted,
      };
    }

    const describe = `${cfg.evalRuns} ${evalModel} network(s) for ${protocol.epochs} epochs (augmentation: ${protocol.augment})`;
    if (cfg.evalRuns > 0) this.hooks.onMessage?.(`Evaluating the distilled set: training ${describe}`);
    const final = cfg.evalRuns > 0 ? evaluate(cfg.iterations) : null;
    let random: Record<string, Score> | null = null;
    if (cfg.baselines && final) {
      this.hooks.onMessage?.(
        `Random real subset of the same size: training ${describe} (cached after the first time)`,
      );
      random = randomSubsetBaseline(dataset, cfg.ipc, {
        models: [evalModel],
        runs: cfg.evalRuns,
        protocol,
        seed: cfg.seed,
      });
    }
    if (final) this.runDir.log({ iteration: cfg.iterations, eval: final, randomSubset: random, protocol });
    const { images, labels } = E.tidy(() => {
      const d = synthetic.decode();
      return { images: d.images.detach(), labels: d.labels.detach() };
    });
    saveArtifact(this.runDir.artifact, dataset, images, labels, {
      method: cfg.method,
      config: cfg as unknown as Record<string, unknown>,
      seed: cfg.seed,
      model: cfg.model,
      metrics: { final, randomSubset: random, evalProtocol: protocol, threads: availableParallelism() },
      lr: learnedLr() ?? null,
    });
    opt.disposeState();
    return {
      runDir: this.runDir.path,
      artifact: this.runDir.artifact,
      evaluation: { model: evalModel, protocol },
      final,
      randomSubset: random,
      interrupted: false,
    };
  }
}
