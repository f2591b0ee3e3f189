// The programmatic entry point: `distill(config)` runs a distillation the way `distillery distill`
// does (config layering, run directory, checkpoints, evaluation, artifact) and returns its result
// with the loaded artifact.
import { join } from 'node:path';
import type { z } from 'zod';
import { loadArtifact, type Artifact } from '../artifact/artifact.js';
import type { Dataset } from '../data/dataset.js';
import { distillConfigSchema, layeredConfig, type DistillConfig, type PresetName } from './config.js';
import { Distiller, type DistillHooks, type DistillResult } from './distiller.js';
import { RunDir } from './rundir.js';

/** A distillation config as a caller writes it: every field optional (defaults fill the rest). */
export type DistillInput = z.input<typeof distillConfigSchema> & {
  /** Start from this preset entry of presets/<method>/<dataset>-ipc<N>.json (default: none). */
  preset?: PresetName;
};

export interface DistillOptions {
  /** Run directory (default: runs/<method>-<dataset>-ipc<N>-seed<S> under the working directory). */
  runDir?: string;
  /** Continue the run in runDir from its checkpoint. */
  resume?: boolean;
  /** Replace a run already in runDir (default: refuse, so nothing is lost by accident). */
  overwrite?: boolean;
  /** An already loaded dataset (default: loaded from config.dataset / dataDir). */
  dataset?: Dataset;
  hooks?: DistillHooks;
}

/** Where a run lives when no directory is given. */
export function defaultRunDir(config: DistillConfig): string {
  const name = config.dataset.replace(/[^\w.-]+/g, '_');
  return join('runs', `${config.method}-${name}-ipc${config.ipc}-seed${config.seed}`);
}

/**
 * Distills a dataset and returns the result with its artifact (null when interrupted).
 *
 * @example
 * const r = await distill({ method: 'dm', dataset: 'mnist', ipc: 10, preset: 'quick' }, { runDir: 'runs/dm' });
 * console.log(r.final?.ConvNet.mean, r.artifact?.images.shape);
 */
export async function distill(
  input: DistillInput,
  o: DistillOptions = {},
): Promise<
  Omit<DistillResult, 'artifact'> & { artifactDir: string; artifact: Artifact | null; config: DistillConfig }
> {
  const { preset, ...rest } = input;
  const method = rest.method ?? 'dm';
  const dataset = rest.dataset ?? 'mnist';
  const ipc = rest.ipc ?? 10;
  const { config } = layeredConfig({ method, dataset, ipc, preset: preset ?? null, overrides: rest });
  const runDir = new RunDir(o.runDir ?? defaultRunDir(config));
  const result = await new Distiller(config, runDir, o.hooks).run({
    resume: o.resume ?? false,
    overwrite: o.overwrite ?? false,
    dataset: o.dataset,
  });
  const artifact = result.interrupted ? null : loadArtifact(result.artifact);
  return { ...result, artifactDir: result.artifact, artifact, config };
}
