// The survey's generic loop (Algorithm 1) made explicit:
//   init S; for it in 1..K: L <- method.step(S, T); S <- S - alpha grad_S L
// (a method may update S several times per iteration, e.g. DC's outer loop)
// plus everything every method shares: seeds, the synthetic-set optimizer,
// periodic evaluation, progress, metrics, checkpoints (every N iterations and on
// SIGINT), resume, and the final artifact. A killed run resumed from its last
// checkpoint ends bit-identical to an uninterrupted one: all randomness flows
// from one generator whose state is checkpointed with the images and optimizer.
import { existsSync, rmSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import * as E from '../engine/index.js';
import { saveArtifact } from '../artifact/artifact.js';
import type { Dataset } from '../data/dataset.js';
import { loadDataset } from '../data/registry.js';
import {
  evaluateSet,
  evaluationSeed,
  randomSubsetBaseline,
  type Protocol,
  type Score,
  type TargetLoss,
} from '../eval/index.js';
import { createNetwork } from '../models/index.js';
import { getMethod, METHODS } from './registry.js';
import { versions } from '../util/version.js';
import { evaluationProtocol, resolveConfig, type DistillConfig } from './config.js';
import { RunDir } from './rundir.js';
import type { Collective } from './method.js';
import { anyRank, sharedWorld } from './dataparallel.js';
import {
  closeSession,
  newSession,
  NonFiniteLossError,
  restoreSession,
  runIterations,
  sessionState,
  type Session,
} from './session.js';

export interface DistillHooks {
  onStart?(info: { total: number; startIteration: number; resumed: boolean }): void;
  onIteration?(info: { iteration: number; loss: number; seconds: number }): void;
  onEvaluation?(info: { iteration: number; scores: Record<string, Score> }): void;
  onMessage?(line: string): void;
  /** Evaluation progress in epochs (periodic and final evaluations, the random-subset baseline). */
  onEvaluationProgress?(info: { done: number; total: number; status: string }): void;
  /** The iterations are over (evaluation and saving follow); e.g. to restore default Ctrl-C handling. */
  onLoopEnd?(): void;
}

export interface DistillResult {
  runDir: string;
  artifact: string;
  /** How the final set was evaluated (model and protocol). */
  /** How the final set was evaluated: model, protocol and the networks' seed (evaluationSeed). */
  evaluation: { model: string; protocol: Protocol; seed?: number };
  final: Record<string, Score> | null;
  randomSubset: Record<string, Score> | null;
  interrupted: boolean;
  /** Iterations completed. */
  iteration: number;
  /** The set has soft labels (evaluation trained with soft cross-entropy). */
  softLabels?: boolean;
  /** The method's own evaluation (e.g. KIP's KRR test accuracy with its kernel), when it has one. */
  own?: { name: string; accuracy: number } | null;
  /**
   * With imageEma: `final` and the artifact are the moving average's; this is the raw images' score
   * under the same protocol and seed (FTD evaluates both).
   */
  rawImages?: Record<string, Score> | null;
  /** Wall time of this process's distillation loop and of the final evaluation (with baselines). */
  seconds?: { distill: number; evaluation: number };
}

const TARGET_LOSS_TEXT: Record<TargetLoss, string> = {
  mse: 'squared error on the targets',
  softmax: 'soft cross-entropy on their softmax',
  argmax: 'cross-entropy on their argmax',
};

/** `{ targetLoss }` for sets whose evaluation reads learned regression targets, else nothing. */
function targetLossRecord(s: Session, cfg: DistillConfig): { targetLoss?: TargetLoss } {
  return s.synthetic.labelForm === 'targets' ? { targetLoss: cfg.evalTargetLoss } : {};
}

export class DistillError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DistillError';
  }
}

export interface RunOptions {
  resume: boolean;
  dataset?: Dataset;
  overwrite?: boolean;
  /** This process's data-parallel group (distillery launch); absent or of size 1: one process. */
  world?: Collective;
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
  /** The data-parallel group of the current run (evaluations share their networks over it). */
  private world: Collective | undefined;

  constructor(
    readonly config: DistillConfig,
    readonly runDir: RunDir,
    private readonly hooks: DistillHooks = {},
  ) {}

  /** Asks the loop to checkpoint and stop after the current iteration (SIGINT). */
  requestStop(): void {
    this.stopRequested = true;
  }

  /**
   * `overwrite`: replace a finished or stopped run in the directory instead of refusing. `world`: this
   * process is one rank of a data-parallel run (see `follow` for the ranks other than 0).
   */
  async run(o: RunOptions): Promise<DistillResult> {
    this.world = o.world && o.world.worldSize > 1 ? o.world : undefined;
    if (o.world && o.world.worldSize > 1) {
      const method = this.config.method;
      if (!getMethod(method).dataParallel)
        throw new DistillError(
          `${method} does not run data-parallel (methods that do: ${METHODS.filter((m) => m.dataParallel)
            .map((m) => m.name)
            .join(', ')}); run it as one process`,
        );
      if (o.world.rank !== 0) return this.follow(o, o.world);
    }
    this.runDir.lock();
    try {
      return await this.runLocked(o);
    } catch (e) {
      // A start that failed before writing run.json leaves nothing behind to block the corrected rerun:
      // the directories lock() created go, the lock with them (still held, so nobody else is inside).
      const created = this.runDir.createdRoot;
      if (created && !existsSync(this.runDir.runJson)) rmSync(created, { recursive: true, force: true });
      throw e;
    } finally {
      this.runDir.unlock();
    }
  }

  /**
   * A rank other than 0: the same session and iterations (its share of the real data), no writes, no
   * evaluation; rank 0 owns the run directory. On resume it reads rank 0's checkpoint (the run
   * directory must be on a file system every rank sees, as for torchrun).
   */
  private async follow(o: RunOptions, world: Collective): Promise<DistillResult> {
    // No barrier with rank 0 here or at the end: rank 0's setup (a selection network for some inits) and
    // its finish (baselines, the artifact) can take longer than any collective timeout. Reading rank 0's
    // checkpoint is safe without one: it is replaced by an atomic rename, and only after iterations that
    // need this rank.
    const cfg = this.config;
    const dataset = o.dataset ?? loadDataset(cfg.dataset, { dataDir: cfg.dataDir, zca: cfg.zca });
    const checkpoint = o.resume ? this.runDir.loadCheckpoint() : null;
    const session = checkpoint
      ? restoreSession(dataset, cfg, checkpoint, checkpoint.iteration)
      : newSession(dataset, cfg);
    session.ctx.world = world;
    const protocol = this.protocol(session);
    try {
      const { iteration, stopped } = await runIterations(
        session,
        checkpoint?.iteration ?? 0,
        cfg.iterations,
        {
          after: ({ iteration }) => {
            // The periodic evaluations' networks are shared among the ranks (rank 0 keeps the scores).
            if (cfg.evalEvery > 0 && iteration % cfg.evalEvery === 0 && iteration < cfg.iterations)
              this.evaluateWithRaw(session, protocol, iteration);
            return this.collectiveStop(world, iteration);
          },
        },
      );
      if (!stopped && cfg.evalRuns > 0) this.evaluateWithRaw(session, protocol, cfg.iterations);
      return {
        runDir: this.runDir.path,
        artifact: stopped ? '' : this.runDir.artifact,
        evaluation: { model: protocol.evalModel, protocol },
        final: null,
        randomSubset: null,
        interrupted: stopped,
        iteration,
      };
    } finally {
      closeSession(session);
    }
  }

  /** Stop after this iteration when any rank was asked to (every rank must stop at the same one). */
  private collectiveStop(world: Collective | undefined, iteration: number): boolean {
    return anyRank(sharedWorld(world), this.stopRequested && iteration < this.config.iterations);
  }

  private async runLocked(o: RunOptions): Promise<DistillResult> {
    this.checkWorldSize(o);
    const { session, start } = this.setup(o);
    if (o.world) session.ctx.world = o.world;
    try {
      const protocol = this.protocol(session);
      const t0 = performance.now();
      const { iteration, stopped } = await this.loop(session, start, protocol, o.world);
      const distill = (performance.now() - t0) / 1000;
      this.hooks.onLoopEnd?.();
      if (stopped) {
        return {
          runDir: this.runDir.path,
          artifact: '',
          evaluation: { model: protocol.evalModel, protocol },
          final: null,
          randomSubset: null,
          interrupted: true,
          iteration,
        };
      }
      const t1 = performance.now();
      const result = this.finish(session, protocol);
      return { ...result, seconds: { distill, evaluation: (performance.now() - t1) / 1000 } };
    } finally {
      closeSession(session);
    }
  }

  /** Checks the dataset and config, creates or reopens the run directory, builds or restores the session. */
  private setup(o: RunOptions): {
    session: Session;
    start: number;
  } {
    const cfg = this.config;
    // Checked under the lock: another process may have started a run here since the caller looked.
    if (!o.resume && existsSync(this.runDir.runJson)) {
      if (!o.overwrite)
        throw new DistillError(
          `run directory ${this.runDir.path} already holds a run: resume it (--resume ${this.runDir.path}; distill(..., { resume: true })), replace it (distill(..., { overwrite: true })), or choose another directory (--out; runDir)`,
        );
      this.runDir.removeRun();
    }
    if (o.resume) {
      const removed = this.runDir.removeStaleTempFiles();
      if (removed.length)
        this.hooks.onMessage?.(
          `Removed ${removed.length} temp file(s) of an interrupted write: ${removed.join(', ')}`,
        );
    }
    const dataset = o.dataset ?? loadDataset(cfg.dataset, { dataDir: cfg.dataDir, zca: cfg.zca });
    if (cfg.ipc > dataset.smallestClassSize) {
      throw new DistillError(
        `--ipc ${cfg.ipc} is larger than the smallest class of ${dataset.name} (${dataset.smallestClassSize} images)`,
      );
    }
    // Fail early on an unknown or unfit model spec.
    for (const spec of [cfg.model, cfg.evalModel ?? cfg.model])
      createNetwork(spec, dataset.imageShape, dataset.numClasses);
    if (!o.resume) {
      if (!['noise', 'real', 'random'].includes(cfg.init) || cfg.labels.init === 'teacher')
        this.hooks.onMessage?.(
          `Init '${cfg.init}'${cfg.labels.init === 'teacher' ? ' with teacher labels' : ''} uses a ConvNet trained as DeepCore trains it (40 epochs on the full training set; cached after the first run)`,
        );
      // Built before the run directory, so a setting that does not fit (a parameterization over the
      // budget, a method's own check) leaves nothing behind to resume.
      const session = newSession(dataset, cfg);
      this.runDir.create({
        config: cfg,
        ...(o.world && o.world.worldSize > 1 ? { worldSize: o.world.worldSize } : {}),
        versions: versions(),
        dataset: { name: dataset.name, checksum: dataset.info.checksum, source: dataset.info.source },
        threads: E.getNumThreads(),
        createdAt: new Date().toISOString(),
      });
      return { session, start: 0 };
    }
    this.checkResumable(dataset);
    const checkpoint = this.runDir.loadCheckpoint();
    if (checkpoint) {
      this.runDir.truncateMetrics(checkpoint.iteration);
      this.hooks.onMessage?.(
        `Resuming ${this.runDir.path} from its checkpoint at iteration ${checkpoint.iteration}`,
      );
      return {
        session: restoreSession(dataset, cfg, checkpoint, checkpoint.iteration),
        start: checkpoint.iteration,
      };
    }
    // Resumed before the first checkpoint: start over in the same directory.
    this.runDir.truncateMetrics(0);
    return { session: newSession(dataset, cfg), start: 0 };
  }

  /** A data-parallel run resumes with the world size it started with. */
  private checkWorldSize(o: RunOptions): void {
    if (!o.resume || !existsSync(this.runDir.runJson)) return;
    const started = (this.runDir.readRecord() as { worldSize?: number }).worldSize ?? 1;
    const now = o.world?.worldSize ?? 1;
    if (started !== now)
      throw new DistillError(
        `${this.runDir.path} was started with ${started} process(es); resume it with the same number${started > 1 ? ` (distillery launch --nproc ${started})` : ' (without distillery launch)'}, not ${now}`,
      );
  }

  private checkResumable(dataset: Dataset): void {
    const record = this.runDir.readRecord();
    // Resolved again, so that defaults added since the run started (e.g. evalModel) compare equal.
    const diff = sameConfig(resolveConfig(record.config as unknown as Record<string, unknown>), this.config);
    if (diff)
      throw new DistillError(`cannot resume ${this.runDir.path} with a different configuration: ${diff}`);
    if (record.dataset.checksum !== dataset.info.checksum) {
      throw new DistillError(
        `cannot resume ${this.runDir.path}: the dataset files changed since the run started (checksum differs)`,
      );
    }
  }

  private protocol(s: Session): Protocol & { evalModel: string } {
    return evaluationProtocol(this.config, s.dataset.name);
  }

  /** The set's scores (its moving average's with imageEma) and, with imageEma, the raw images' too. */
  private evaluateWithRaw(
    s: Session,
    protocol: Protocol & { evalModel: string },
    iteration: number,
  ): { scores: Record<string, Score>; raw: Record<string, Score> | null } {
    const scores = s.synthetic.withEma(() => this.evaluate(s, protocol, iteration));
    const raw = s.synthetic.hasEma ? this.evaluate(s, protocol, iteration, 'the raw images') : null;
    return { scores, raw };
  }

  private evaluate(
    s: Session,
    protocol: Protocol & { evalModel: string },
    iteration: number,
    what = 'the set',
  ): Record<string, Score> {
    return E.tidy(() => {
      // Evaluation draws from its own seed, so it never shifts the distillation stream.
      return evaluateSet(s.dataset, s.synthetic.trainingSet(this.config.evalTargetLoss), {
        models: [protocol.evalModel],
        runs: this.config.evalRuns,
        protocol,
        seed: evaluationSeed(this.config.seed, iteration),
        onEpoch: this.epochProgress(protocol, what),
        world: this.world,
      });
    });
  }

  /** An onEpoch callback reporting `what`'s evaluation in epochs over evalRuns networks. */
  private epochProgress(
    protocol: Protocol,
    what: string,
  ): (model: string, run: number, epoch: number) => void {
    const perNetwork = protocol.epochs + 1;
    const total = this.config.evalRuns * perNetwork;
    const writer = !this.world || this.world.rank === 0;
    return (model, run, epoch) => {
      if (writer) this.runDir.heartbeat();
      this.hooks.onEvaluationProgress?.({
        done: run * perNetwork + epoch + 1,
        total,
        status: `${what}: ${model} #${run + 1} epoch ${epoch}`,
      });
    };
  }

  private saveCheckpoint(s: Session, iteration: number): void {
    E.tidy(() => this.runDir.saveCheckpoint({ iteration, ...sessionState(s) }));
  }

  /** Iterations start..K with metrics, periodic evaluation and checkpoints; stops early on requestStop(). */
  private async loop(
    s: Session,
    start: number,
    protocol: Protocol & { evalModel: string },
    world?: Collective,
  ): Promise<{ iteration: number; stopped: boolean }> {
    const cfg = this.config;
    this.hooks.onStart?.({ total: cfg.iterations, startIteration: start, resumed: start > 0 });
    try {
      return await runIterations(s, start, cfg.iterations, {
        after: ({ iteration, loss, seconds }) => {
          this.runDir.heartbeat();
          this.runDir.log({ iteration, loss, seconds });
          this.hooks.onIteration?.({ iteration, loss, seconds });
          if (cfg.evalEvery > 0 && iteration % cfg.evalEvery === 0 && iteration < cfg.iterations) {
            const { scores, raw } = this.evaluateWithRaw(s, protocol, iteration);
            this.runDir.log({ iteration, eval: scores, ...(raw ? { evalRawImages: raw } : {}) });
            this.hooks.onEvaluation?.({ iteration, scores });
          }
          const stop = this.collectiveStop(world, iteration);
          if (stop || iteration % cfg.checkpointEvery === 0 || iteration === cfg.iterations)
            this.saveCheckpoint(s, iteration);
          return stop;
        },
      });
    } catch (e) {
      if (!(e instanceof NonFiniteLossError)) throw e;
      const good = Math.floor((e.iteration - 1) / cfg.checkpointEvery) * cfg.checkpointEvery;
      throw new DistillError(
        `${e.message}. The last good checkpoint (iteration ${good}) is in ${this.runDir.path}; lower the learning rate (--lr) and resume or restart`,
      );
    }
  }

  /** Final evaluation, the random-subset baseline, and the artifact. */
  private finish(s: Session, protocol: Protocol & { evalModel: string }): DistillResult {
    const cfg = this.config;
    const evalModel = protocol.evalModel;
    const soft = s.synthetic.softTraining
      ? ', soft labels: soft cross-entropy'
      : s.synthetic.labelForm === 'targets'
        ? `, learned regression targets: ${TARGET_LOSS_TEXT[cfg.evalTargetLoss]}`
        : '';
    const describe = `${cfg.evalRuns} ${evalModel} network(s) for ${protocol.epochs} epochs (augmentation: ${protocol.augment}${soft})`;
    const ema = cfg.imageEma !== null ? `the moving average (decay ${cfg.imageEma}) of ` : '';
    if (cfg.evalRuns > 0)
      this.hooks.onMessage?.(
        `Evaluating ${ema}the distilled set: training ${describe}${ema ? '; then the raw images the same way' : ''}`,
      );
    const evaluated = cfg.evalRuns > 0 ? this.evaluateWithRaw(s, protocol, cfg.iterations) : null;
    const final = evaluated?.scores ?? null;
    const rawImages = evaluated?.raw ?? null;
    let random: Record<string, Score> | null = null;
    if (cfg.baselines && final) {
      this.hooks.onMessage?.(
        `Random real subset of the same size: training ${cfg.evalRuns} ${evalModel} network(s) for ${protocol.epochs} epochs (augmentation: ${protocol.augment}; cached after the first time)`,
      );
      random = randomSubsetBaseline(s.dataset, cfg.ipc, {
        models: [evalModel],
        runs: cfg.evalRuns,
        protocol,
        seed: cfg.seed,
        onEpoch: this.epochProgress(protocol, 'random subsets'),
      });
    }
    let own: { name: string; accuracy: number } | null = null;
    const ownEvaluation = s.method.ownEvaluation;
    if (cfg.evalRuns > 0 && ownEvaluation) {
      this.hooks.onMessage?.(
        `Evaluating the distilled set with ${s.method.name}'s own predictor on the test split`,
      );
      own = s.synthetic.withEma(() =>
        ownEvaluation.call(s.method, s.synthetic, s.dataset, cfg.methodConfig, s.ctx.state),
      );
      this.hooks.onMessage?.(`${own.name}: test accuracy ${(100 * own.accuracy).toFixed(2)}%`);
    }
    if (final)
      this.runDir.log({
        iteration: cfg.iterations,
        eval: final,
        ...(rawImages ? { evalRawImages: rawImages } : {}),
        randomSubset: random,
        protocol,
        own,
        ...targetLossRecord(s, cfg),
      });
    const set = s.synthetic;
    // The artifact holds the moving average when the run keeps one (the set FTD reports).
    set.withEma(() => this.saveArtifact(s, protocol, { final, random, own, rawImages }));
    return {
      runDir: this.runDir.path,
      artifact: this.runDir.artifact,
      evaluation: { model: evalModel, protocol, seed: evaluationSeed(cfg.seed, cfg.iterations) },
      final,
      randomSubset: random,
      interrupted: false,
      iteration: cfg.iterations,
      softLabels: s.synthetic.softTraining,
      own,
      ...(rawImages ? { rawImages } : {}),
    };
  }

  private saveArtifact(
    s: Session,
    protocol: Protocol & { evalModel: string },
    r: {
      final: Record<string, Score> | null;
      random: Record<string, Score> | null;
      own: { name: string; accuracy: number } | null;
      rawImages: Record<string, Score> | null;
    },
  ): void {
    const cfg = this.config;
    const set = s.synthetic;
    // The artifact's `labels` are hard for target sets (their argmax); labelTargets keeps the targets.
    const { images, labels } = set.trainingSet('argmax');
    saveArtifact(this.runDir.artifact, s.dataset, images, labels, {
      ipc: cfg.ipc,
      parameterization: set.parameterization,
      labelLogits: set.labelForm === 'logits' ? set.labels : undefined,
      labelTargets: set.labelForm === 'targets' ? set.labels : undefined,
      lr: set.lr?.item() ?? null,
      method: cfg.method,
      config: cfg as unknown as Record<string, unknown>,
      seed: cfg.seed,
      model: cfg.model,
      metrics: {
        final: r.final,
        ...(r.rawImages ? { rawImages: r.rawImages, imageEma: cfg.imageEma } : {}),
        randomSubset: r.random,
        evalProtocol: protocol,
        ...targetLossRecord(s, cfg),
        own: r.own,
        threads: availableParallelism(),
      },
    });
  }
}
