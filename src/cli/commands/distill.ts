// `distillery distill`: the main job. Resolves defaults <- preset <- flags, runs
// the Distiller with a progress bar, and prints the final accuracy next to a
// random real subset of the same size under the same protocol.
import { existsSync, readFileSync } from 'node:fs';
import yaml from 'js-yaml';
import { defaultRunDir } from '../../distill/api.js';
import {
  ConfigError,
  deepMerge,
  FORBIDDEN_CONFIG_KEYS,
  layeredConfig,
  resolveConfig,
  type DistillConfig,
  type PresetName,
} from '../../distill/config.js';
import { Distiller } from '../../distill/distiller.js';
import { estimateRun } from '../../distill/estimate.js';
import { loadDataset } from '../../data/registry.js';
import { RunDir } from '../../distill/rundir.js';
import * as E from '../../engine/index.js';
import { worldFromEnv } from '../../engine/index.js';
import { createReporter, duration, scoreText, UsageError } from '../output.js';
import type { Score } from '../../eval/index.js';

export interface DistillCommandOptions {
  dataset: string;
  method: string;
  ipc: number;
  preset: PresetName;
  iterations?: number;
  seed: number;
  lr?: number;
  model?: string;
  init?: string;
  evalRuns?: number;
  evalEpochs?: number;
  evalPrecision?: string;
  evalTargetLoss?: string;
  checkpointEvery?: number;
  set?: string[];
  out?: string;
  resume?: string;
  dataDir?: string;
  /** Expert trajectories for the methods with usesExperts (methodConfig.experts). */
  experts?: string;
  json?: boolean;
  /** A JSON or YAML file of config values, layered over the preset and under the flags. */
  config?: string;
  /** Print the resolved config and a measured time estimate, then stop (nothing is written). */
  dryRun?: boolean;
  /** Option names typed on the command line (not defaults); with --resume they must match the run. */
  given?: string[];
}

/**
 * Config values given explicitly on the command line: all of dataset/method/ipc/seed for a new run,
 * only the typed ones when resuming (their defaults must not override the run's settings).
 */
function flagOverrides(o: DistillCommandOptions, all: boolean): Record<string, unknown> {
  const flags: Record<string, unknown> = {};
  for (const key of ['dataset', 'method', 'ipc', 'seed'] as const)
    if (all || o.given?.includes(key)) flags[key] = o[key];
  if (o.dataDir) flags.dataDir = o.dataDir;
  if (o.iterations !== undefined) flags.iterations = o.iterations;
  if (o.model) flags.model = o.model;
  if (o.init) flags.init = o.init;
  if (o.evalRuns !== undefined) flags.evalRuns = o.evalRuns;
  if (o.evalEpochs !== undefined) flags.evalEpochs = o.evalEpochs;
  if (o.evalPrecision !== undefined) flags.evalPrecision = o.evalPrecision;
  if (o.evalTargetLoss !== undefined) flags.evalTargetLoss = o.evalTargetLoss;
  if (o.checkpointEvery !== undefined) flags.checkpointEvery = o.checkpointEvery;
  if (o.lr !== undefined) flags.optimizer = { lr: o.lr };
  if (o.experts) flags.methodConfig = { experts: o.experts };
  for (const assignment of o.set ?? []) {
    const eq = assignment.indexOf('=');
    if (eq < 1)
      throw new UsageError(`--set expects key=value (e.g. methodConfig.batchReal=64), got '${assignment}'`);
    const path = assignment.slice(0, eq).split('.');
    const raw = assignment.slice(eq + 1);
    let value: unknown = raw;
    try {
      value = JSON.parse(raw);
    } catch {
      // not JSON: keep the string
    }
    setPath(flags, path, value, assignment);
  }
  return flags;
}

/** Every key inside a JSON value (JSON.parse makes '__proto__' an own key). */
function nestedKeys(value: unknown): string[] {
  if (typeof value !== 'object' || value === null) return [];
  return Object.entries(value).flatMap(([k, v]) => [k, ...nestedKeys(v)]);
}

/** flags.a.b.c = value for `--set a.b.c=value`, refusing prototype keys and paths through a value. */
function setPath(flags: Record<string, unknown>, path: string[], value: unknown, assignment: string): void {
  const bad = [...path, ...nestedKeys(value)].find((k) => k === '' || FORBIDDEN_CONFIG_KEYS.has(k));
  if (bad !== undefined)
    throw new UsageError(
      `--set ${assignment}: '${bad}' is not a config key (see \`distillery methods <name>\`)`,
    );
  let node = flags;
  path.slice(0, -1).forEach((key, i) => {
    const next = Object.hasOwn(node, key) ? node[key] : (node[key] = {});
    if (typeof next !== 'object' || next === null || Array.isArray(next))
      throw new UsageError(
        `--set ${assignment}: ${path.slice(0, i + 1).join('.')} is a value (${JSON.stringify(next)}), not a group of settings`,
      );
    node = next as Record<string, unknown>;
  });
  node[path[path.length - 1]] = value;
}

function asUsage<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof ConfigError || (e instanceof Error && e.message.startsWith('unknown method')))
      throw new UsageError(e.message);
    throw e;
  }
}

/** The settings of --config FILE (JSON, or YAML by extension), checked to be an object of settings. */
export function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new UsageError(`--config ${path}: ${e instanceof Error ? e.message : String(e)}`);
  }
  let value: unknown;
  try {
    value = /\.ya?ml$/i.test(path) ? yaml.load(text) : JSON.parse(text);
  } catch (e) {
    throw new UsageError(
      `--config ${path} is not valid ${/\.ya?ml$/i.test(path) ? 'YAML' : 'JSON'}: ${e instanceof Error ? e.message : String(e)}`,
    );
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new UsageError(
      `--config ${path} must hold an object of settings (e.g. {"method": "dm", "ipc": 10})`,
    );
  const bad = nestedKeys(value).find((k) => FORBIDDEN_CONFIG_KEYS.has(k));
  if (bad) throw new UsageError(`--config ${path}: '${bad}' is not a config key`);
  return value as Record<string, unknown>;
}

/**
 * Layers defaults <- method defaults <- preset <- --config file <- flags. The file may name the
 * method, dataset, ipc and seed; a flag typed on the command line wins over it.
 */
export function buildConfig(o: DistillCommandOptions): { config: DistillConfig; note: string } {
  const file = o.config ? readConfigFile(o.config) : {};
  const pick = <K extends 'method' | 'dataset' | 'ipc' | 'seed'>(key: K) =>
    (o.given?.includes(key) || file[key] === undefined ? o[key] : file[key]) as DistillCommandOptions[K];
  const chosen = {
    ...o,
    method: pick('method'),
    dataset: pick('dataset'),
    ipc: pick('ipc'),
    seed: pick('seed'),
  };
  return asUsage(() => {
    const r = layeredConfig({
      method: chosen.method,
      dataset: chosen.dataset,
      ipc: chosen.ipc,
      preset: o.preset,
      overrides: deepMerge(file, flagOverrides(chosen, true)),
    });
    return o.config ? { ...r, note: `${r.note}, then ${o.config}` } : r;
  });
}

async function dryRun(
  out: ReturnType<typeof createReporter>,
  config: DistillConfig,
  note: string,
): Promise<void> {
  out.info(`Resolved configuration (${note}):\n${JSON.stringify(config, null, 2)}`);
  out.info('Measuring a few iterations and two short evaluations on this machine...');
  const dataset = loadDataset(config.dataset, { dataDir: config.dataDir, zca: config.zca });
  try {
    const e = await estimateRun(config, dataset);
    const text = [
      `Estimate on this machine: distillation ${duration(e.distillSeconds)} (${config.iterations} iterations x ${e.secondsPerIteration.toFixed(3)} s),`,
      `evaluation ${duration(e.evaluationSeconds)} (${config.evalRuns} network(s) x ${e.evalEpochs} epochs${config.baselines ? ', twice: the set and the random-subset baseline, unless cached' : ''}${config.evalEvery ? `, plus every ${config.evalEvery} iterations` : ''});`,
      `total about ${duration(e.distillSeconds + e.evaluationSeconds)}. No run directory was created (dry run; caches such as a teacher network may have been filled).`,
    ].join(' ');
    out.result(text, { dryRun: true, config, note, estimate: e });
  } finally {
    dataset.dispose();
  }
}

export async function distillCommand(o: DistillCommandOptions): Promise<void> {
  const out = createReporter(o.json ?? false);
  if (o.dryRun) {
    if (o.resume) throw new UsageError('--dry-run estimates a new run; it cannot be combined with --resume');
    const built = buildConfig(o);
    return dryRun(out, built.config, built.note);
  }
  let runDir: RunDir;
  let config: DistillConfig;
  if (o.resume) {
    runDir = new RunDir(o.resume);
    if (!existsSync(runDir.runJson))
      throw new UsageError(`--resume ${o.resume}: not a run directory (no run.json)`);
    for (const flag of ['preset', 'out', 'config'] as const)
      if (o.given?.includes(flag))
        throw new UsageError(
          `--${flag} cannot be combined with --resume: a resumed run keeps its settings and directory`,
        );
    // Flags given with --resume must agree with the run's configuration; the Distiller reports any
    // other difference. A different method is named here, before its settings fail to validate.
    const recorded = runDir.readRecord().config as unknown as Record<string, unknown>;
    if (o.given?.includes('method') && o.method !== recorded.method)
      throw new Error(
        `cannot resume ${runDir.path} with a different configuration: method: ${JSON.stringify(recorded.method)} (run) vs ${JSON.stringify(o.method)} (now)`,
      );
    config = asUsage(() => resolveConfig(deepMerge(recorded, flagOverrides(o, false))));
  } else {
    const built = buildConfig(o);
    config = built.config;
    runDir = new RunDir(o.out ?? defaultRunDir(config));
    // A rank other than 0 of a data-parallel run finds rank 0's run.json here: it only follows.
    const follower = (worldFromEnv()?.rank ?? 0) > 0;
    if (existsSync(runDir.runJson) && !follower) {
      throw new UsageError(
        `run directory ${runDir.path} already holds a run: resume it with --resume ${runDir.path}, or choose another --out`,
      );
    }
    out.info(
      `Distilling ${config.dataset} with ${config.method} at ${config.ipc} images per class (${built.note}); run directory ${runDir.path}`,
    );
  }
  out.event('start', { runDir: runDir.path, resumed: Boolean(o.resume), config });
  let bar: ReturnType<typeof out.progress> | null = null;
  let evalBar: ReturnType<typeof out.progress> | null = null;
  let evalTotal = 0;
  let lossAvg: number | null = null;
  const distiller = new Distiller(config, runDir, {
    onStart: ({ total, startIteration }) => {
      bar = out.progress('distilling', total);
      bar.update(startIteration);
    },
    onIteration: ({ iteration, loss, seconds }) => {
      lossAvg = lossAvg === null ? loss : 0.9 * lossAvg + 0.1 * loss;
      bar?.update(iteration, { status: `loss ${lossAvg.toPrecision(4)}, ${(1 / seconds).toFixed(2)} it/s` });
      out.event('iteration', { iteration, loss, seconds });
    },
    onEvaluation: ({ iteration, scores }) => out.event('evaluation', { iteration, scores }),
    onMessage: (line) => out.info(line),
    onEvaluationProgress: ({ done, total, status }) => {
      if (!evalBar || total !== evalTotal || done === 1) {
        evalBar?.stop();
        evalBar = out.progress('evaluating (epochs)', total);
        evalTotal = total;
      }
      evalBar.update(done, { status });
      if (done === total) {
        evalBar.stop();
        evalBar = null;
      }
    },
    onLoopEnd: () => {
      process.off('SIGINT', onSigint);
      // The evaluation has its own bar.
      (bar as ReturnType<typeof out.progress> | null)?.stop();
    },
  });
  // First Ctrl-C: checkpoint after the current iteration and stop; a second one exits at once.
  let interrupts = 0;
  function onSigint(): void {
    if (++interrupts > 1) process.exit(130);
    out.info('\nStopping after this iteration (checkpoint first); press Ctrl-C again to quit now.');
    distiller.requestStop();
  }
  process.on('SIGINT', onSigint);
  // Under `distillery launch` (or torchrun): one rank of a data-parallel run.
  const env = worldFromEnv();
  const world = env && env.worldSize > 1 ? E.ProcessGroup.fromEnv() : undefined;
  try {
    const r = await distiller.run({ resume: Boolean(o.resume), world });
    (bar as ReturnType<typeof out.progress> | null)?.stop();
    if (world && world.rank > 0) {
      out.result(
        `rank ${world.rank} of ${world.worldSize}: ${r.interrupted ? 'stopped' : 'done'} (rank 0 writes the run)`,
        {
          rank: world.rank,
          interrupted: r.interrupted,
        },
      );
      return;
    }
    if (r.interrupted) {
      const launcher = world ? `distillery launch --nproc ${world.worldSize} -- ` : 'distillery ';
      const resume = `${launcher}distill --resume ${r.runDir}`;
      out.result(`Interrupted: checkpoint saved in ${r.runDir}. Continue with: ${resume}`, {
        interrupted: true,
        runDir: r.runDir,
        resume,
      });
      process.exitCode = 130;
      return;
    }
    const { model, protocol } = r.evaluation;
    const fmt = (s: Score | undefined) => (s ? scoreText(s, '%') : 'not evaluated');
    const soft = r.softLabels ? ', soft labels (soft cross-entropy)' : '';
    const lines = [
      `Distilled set: ${r.artifact}`,
      `Test accuracy of ${model} trained on it (${config.evalRuns} network(s), ${protocol.epochs} epochs, augmentation ${protocol.augment}, ${protocol.precision}${soft}): ${fmt(r.final?.[model])}`,
    ];
    if (r.randomSubset)
      lines.push(`Random real subset, same size and protocol:   ${fmt(r.randomSubset[model])}`);
    if (r.seconds)
      lines.push(
        `Elapsed: distillation ${duration(r.seconds.distill)}, evaluation ${duration(r.seconds.evaluation)}`,
      );
    out.result(lines.join('\n'), {
      runDir: r.runDir,
      artifact: r.artifact,
      final: r.final,
      randomSubset: r.randomSubset,
      evaluationSeed: r.evaluation.seed,
      seconds: r.seconds,
    });
  } finally {
    process.off('SIGINT', onSigint);
    world?.close();
  }
}
