// The full configuration of a distillation run, validated with defaults, and
// the presets (data files: presets/<method>/<dataset>-ipc<N>.json holding a
// `paper` and a `quick` entry) that fill it.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { ModelSpecError } from '../models/index.js';
import { referenceEvalModel, type AnyMethod } from './method.js';
import { defaultStrategy } from '../augment/index.js';
import { defaultProtocol, type Protocol } from '../eval/index.js';
import './methods/index.js';
import { getMethod } from './registry.js';
import { precisionOption } from './precision.js';
import { groupOptimizersSchema, optimizerSpecSchema } from './optimizers.js';
import { parameterizationConfigSchema, resolveParameterization } from '../param/index.js';
import { labelConfigSchema } from './synthetic.js';

export const distillConfigSchema = z
  .object({
    dataset: z.string().default('mnist'),
    dataDir: z.string().optional(),
    /** ZCA whitening of the raw pixels (eps, as MTT: no mean/std normalisation then), or null for none. */
    zca: z.number().positive().nullable().default(null),
    method: z.string().default('dm'),
    methodConfig: z.record(z.unknown()).default({}),
    model: z.string().default('ConvNet'),
    ipc: z.number().int().positive().default(10),
    init: z.enum(['noise', 'real', 'random', 'herding', 'kcenter', 'forgetting']).default('real'),
    iterations: z.number().int().nonnegative().default(20000),
    seed: z.number().int().nonnegative().default(0),
    /** Optimizer of the stored images (the 'images' group). */
    optimizer: optimizerSpecSchema.default({}),
    /** Optimizers of the other learnable groups: decoder weights, label logits, a learned lr. */
    optimizers: groupOptimizersSchema,
    /** How the set is stored: `{ kind: 'pixels' | 'idc' | 'linba' | 'haba', ...settings }` (param/). */
    parameterization: parameterizationConfigSchema,
    /** Labels of the decoded images: init hard | teacher | uniform, learned as logits or not. */
    labels: labelConfigSchema,
    /**
     * Keep an exponential moving average of the stored images with this decay (FTD: 0.999; its scripts
     * 0.9995), updated after every iteration; evaluation and the artifact then use the average, and the
     * raw images are evaluated too. null: none.
     */
    imageEma: z.number().gt(0).lt(1).nullable().default(null),
    /** Evaluate every N iterations (0: only at the end). */
    evalEvery: z.number().int().nonnegative().default(0),
    evalRuns: z.number().int().nonnegative().default(5),
    /** Epochs of each evaluation network; default as the references: 1000 with augmentation, 300 without. */
    evalEpochs: z.number().int().positive().optional(),
    /**
     * Augmentation of the evaluation networks (eval/protocol.ts resolveAugment): true = DSA with the
     * dataset's strategy, false = none, 'dc' = DC's rule (crop/scale/rotate on MNIST), or a protocol string.
     */
    evalAugment: z.union([z.boolean(), z.string()]).default(true),
    /** Model the evaluation networks use; default: `model`, batch norm replaced by instance norm (the references' eval mode 'S'). */
    evalModel: z.string().optional(),
    /** Arithmetic of the evaluation networks' training steps (eval/protocol.ts); auto: bfloat16 mixed where native. */
    evalPrecision: precisionOption('auto'),
    /**
     * How sets with learned regression targets (KIP, RFAD, FRePo) train evaluation networks
     * (eval/protocol.ts TargetLoss): 'softmax' (soft cross-entropy on softmax(targets); the default),
     * 'argmax' (cross-entropy on the argmax class) or 'mse' (FRePo's and RFAD's evaluation loss).
     */
    evalTargetLoss: z.enum(['mse', 'softmax', 'argmax']).default('softmax'),
    /** Also evaluate a random real subset of the same size at the end. */
    baselines: z.boolean().default(true),
    checkpointEvery: z.number().int().positive().default(100),
  })
  .strict();

export type DistillConfig = z.infer<typeof distillConfigSchema>;
export type PresetName = 'paper' | 'quick';

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

const PRESET_DIR = fileURLToPath(new URL('../../../presets/', import.meta.url));

export function presetPath(method: string, dataset: string, ipc: number): string {
  return `${PRESET_DIR}${method}/${dataset}-ipc${ipc}.json`;
}

/** The preset's overrides, or null when no preset file exists for this method x dataset x ipc. */
export function loadPreset(
  method: string,
  dataset: string,
  ipc: number,
  name: PresetName,
): Record<string, unknown> | null {
  const path = presetPath(method, dataset, ipc);
  if (!existsSync(path)) return null;
  const all = JSON.parse(readFileSync(path, 'utf8')) as Record<string, Record<string, unknown>>;
  if (!all[name])
    throw new ConfigError(`preset file ${path} has no '${name}' entry (has: ${Object.keys(all).join(', ')})`);
  return all[name];
}

/** The preset files of a method, as (dataset, ipc) pairs. */
function presetFiles(method: string): { dataset: string; ipc: number }[] {
  let names: string[];
  try {
    names = readdirSync(`${PRESET_DIR}${method}`);
  } catch {
    return [];
  }
  return names.flatMap((n) => {
    const m = /^(.+)-ipc(\d+)\.json$/.exec(n);
    return m ? [{ dataset: m[1], ipc: Number(m[2]) }] : [];
  });
}

/**
 * The preset to derive from when none exists for this dataset x IPC: the same dataset's (else
 * MNIST's, the smallest images) at the nearest IPC on a log scale (ties: the smaller IPC). So `quick`
 * stays quick for any IPC and for custom datasets, instead of falling back to paper-scale defaults.
 */
export function nearestPreset(
  method: string,
  dataset: string,
  ipc: number,
): { dataset: string; ipc: number } | null {
  const files = presetFiles(method);
  const own = files.filter((f) => f.dataset === dataset);
  const pool = own.length ? own : files.filter((f) => f.dataset === 'mnist');
  if (!pool.length) return null;
  const distance = (f: { ipc: number }) => Math.abs(Math.log(f.ipc / ipc));
  return pool.reduce((best, f) =>
    distance(f) < distance(best) || (distance(f) === distance(best) && f.ipc < best.ipc) ? f : best,
  );
}

/** A preset entry for a dataset x IPC without its own file (see nearestPreset); null if the method has none. */
function derivedPreset(
  method: string,
  dataset: string,
  ipc: number,
  name: PresetName,
): { preset: Record<string, unknown>; from: string } | null {
  const near = nearestPreset(method, dataset, ipc);
  if (!near) return null;
  const preset = loadPreset(method, near.dataset, near.ipc, name);
  if (!preset) return null;
  if (near.dataset !== dataset && isObject(preset.methodConfig)) {
    // Another dataset's expert trajectories do not fit this one: the user names theirs.
    const rest = { ...preset.methodConfig };
    delete rest.experts;
    return { preset: { ...preset, methodConfig: rest }, from: presetPath(method, near.dataset, near.ipc) };
  }
  return { preset, from: presetPath(method, near.dataset, near.ipc) };
}

function issues(e: z.ZodError): string {
  return e.issues.map((i) => `${i.path.join('.') || 'config'}: ${i.message}`).join('; ');
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v);

/**
 * `over` merged into `base`, objects key by key (neither is modified). An object that names a
 * different `kind` replaces the one beneath instead (a parameterization or optimizer of another
 * kind shares none of its settings).
 */
/**
 * The evaluation protocol a config asks for on a dataset (its model, augmentation, precision,
 * epochs): what Distiller evaluates with and what `--dry-run` estimates.
 */
export function evaluationProtocol(
  config: DistillConfig,
  datasetName: string,
): Protocol & { evalModel: string } {
  const evalModel = config.evalModel ?? config.model;
  const p = defaultProtocol(datasetName, {
    augment: config.evalAugment,
    precision: config.evalPrecision,
    epochs: config.evalEpochs,
    evalModel,
  });
  return { ...p, evalModel };
}

/** Keys no config may hold: JSON.parse makes '__proto__' an own key, and assigning it swaps prototypes. */
export const FORBIDDEN_CONFIG_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

export function deepMerge(
  base: Record<string, unknown>,
  over: Record<string, unknown>,
): Record<string, unknown> {
  const out = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (FORBIDDEN_CONFIG_KEYS.has(k)) throw new ConfigError(`'${k}' is not a config key`);
    const b = out[k];
    const otherKind = isObject(v) && isObject(b) && 'kind' in v && 'kind' in b && v.kind !== b.kind;
    out[k] = isObject(v) && isObject(b) && !otherKind ? deepMerge(b, v) : v;
  }
  return out;
}

/**
 * Validates a config and fills what it leaves out: first from the method's own
 * defaults (e.g. DC's noise init), then from the schema; the method's settings too.
 */
export function resolveConfig(input: Record<string, unknown>): DistillConfig {
  const methodName =
    typeof input.method === 'string' ? input.method : distillConfigSchema.shape.method.parse(undefined);
  const first = getMethod(methodName);
  const upgraded = first.migrate ? first.migrate(input) : input;
  const parsed = distillConfigSchema.safeParse(deepMerge(first.defaults, upgraded));
  if (!parsed.success) throw new ConfigError(`invalid configuration: ${issues(parsed.error)}`);
  const config = parsed.data;
  const method = getMethod(config.method);
  const m = method.schema.safeParse(config.methodConfig);
  if (!m.success) throw new ConfigError(`invalid ${config.method} settings: ${issues(m.error)}`);
  let parameterization: typeof config.parameterization;
  try {
    const { kind, settings } = resolveParameterization(config.parameterization);
    parameterization = { kind: kind.kind, ...settings };
  } catch (e) {
    throw new ConfigError(e instanceof Error ? e.message : String(e));
  }
  if (config.labels.learn && !method.labelGradients)
    throw new ConfigError(
      `${config.method}'s objective does not depend on the labels, so labels.learn cannot learn them; keep labels.learn false (soft labels from labels.init teacher or uniform still apply to evaluation)`,
    );
  let evalModel: string;
  try {
    // Parses the spec first, so a bad model fails here even when evalModel is given.
    const byMethod = referenceEvalModel(method, config.model);
    evalModel = config.evalModel ?? byMethod;
  } catch (e) {
    if (e instanceof ModelSpecError) throw new ConfigError(e.message);
    throw e;
  }
  return {
    ...config,
    evalModel,
    parameterization,
    methodConfig: withDsaStrategy(method, config.dataset, m.data),
  };
}

/**
 * Records the dataset's default DSA strategy in the method's settings when the method takes one and
 * none was given, so run.json (and a resumed run) keeps the strategy the run started with even if
 * the default changes (custom datasets lost flips once).
 */
function withDsaStrategy(method: AnyMethod, dataset: string, data: unknown): Record<string, unknown> {
  const settings = data as Record<string, unknown>;
  if (settings.dsaStrategy !== undefined) return settings;
  const r = method.schema.safeParse({ ...settings, dsaStrategy: defaultStrategy(dataset) });
  return r.success && (r.data as Record<string, unknown>).dsaStrategy !== undefined
    ? (r.data as Record<string, unknown>)
    : settings;
}

export interface LayerOptions {
  method: string;
  dataset: string;
  ipc: number;
  /** Preset entry to start from (presets/<method>/<dataset>-ipc<N>.json), or null for none. */
  preset: PresetName | null;
  /** What the caller sets (flags, --set, a benchmark's own settings), applied last. */
  overrides?: Record<string, unknown>;
}

/**
 * The one place configs are layered: schema defaults <- the method's defaults <- the preset <-
 * overrides. Also says where the preset came from (for the run's first line).
 *
 * @example layeredConfig({ method: 'dm', dataset: 'mnist', ipc: 10, preset: 'quick', overrides: { seed: 1 } })
 */
export function layeredConfig(o: LayerOptions): { config: DistillConfig; note: string } {
  let preset = o.preset ? loadPreset(o.method, o.dataset, o.ipc, o.preset) : null;
  let note = preset
    ? `preset '${o.preset}' from ${presetPath(o.method, o.dataset, o.ipc)}`
    : "the method's defaults";
  if (!preset && o.preset === 'quick') {
    const derived = derivedPreset(o.method, o.dataset, o.ipc, 'quick');
    if (derived) {
      preset = derived.preset;
      note = `preset 'quick' derived from ${derived.from} (no file for ${o.dataset} at ipc ${o.ipc})`;
    }
  }
  if (!preset && o.preset)
    note = `no '${o.preset}' preset for ${o.method} x ${o.dataset} x ipc ${o.ipc}; using the method's defaults (the published, paper-scale settings)`;
  const base = { method: o.method, dataset: o.dataset, ipc: o.ipc };
  return { config: resolveConfig(deepMerge(deepMerge(preset ?? {}, base), o.overrides ?? {})), note };
}
