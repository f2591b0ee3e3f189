// A study file: the grid of the survey's empirical study (datasets x methods x IPCs x seeds), the
// evaluation every cell gets (networks, epochs, the cross-architecture pool) and the baselines measured
// under the identical protocol. JSON or YAML, validated with every problem named.
import { readFileSync } from 'node:fs';
import yaml from 'js-yaml';
import { z } from 'zod';
import { createNetwork, ModelSpecError } from '../models/index.js';
import { METHODS } from '../distill/registry.js';
import '../distill/methods/index.js';

export const STUDY_BASELINES = ['random', 'herding', 'kcenter', 'forgetting', 'full'] as const;
export type StudyBaseline = (typeof STUDY_BASELINES)[number];

const methodEntry = z
  .object({
    method: z.string().describe('A registered method (`distillery methods`).'),
    label: z
      .string()
      .regex(/^[\w.-]+$/, 'letters, digits, _ . - only (it names a directory)')
      .optional()
      .describe('Name of the row (default: the method); two entries of one method need labels.'),
    preset: z.enum(['quick', 'paper']).nullable().default('quick').describe('Preset entry, or null.'),
    set: z.record(z.unknown()).default({}).describe('Config overrides, as `--set` would give them.'),
  })
  .strict();

export const studySchema = z
  .object({
    name: z.string().default('study'),
    datasets: z.array(z.string()).nonempty(),
    ipcs: z.array(z.number().int().positive()).nonempty(),
    seeds: z.array(z.number().int().nonnegative()).nonempty().default([0]),
    methods: z.array(methodEntry).default([]),
    evaluation: z
      .object({
        models: z
          .array(z.string())
          .nonempty()
          .default(['ConvNet'])
          .describe('The first is the main model; the others are the cross-architecture pool.'),
        runs: z.number().int().positive().default(3).describe('Networks per model (and random draws).'),
        epochs: z.number().int().positive().default(300),
        precision: z.enum(['float32', 'bfloat16']).default('float32'),
        fullEpochs: z.number().int().positive().default(5).describe('Epochs of the full-data baseline.'),
      })
      .strict()
      .default({}),
    baselines: z.array(z.enum(STUDY_BASELINES)).default(['random']),
    scores: z
      .boolean()
      .default(true)
      .describe("DD-Ranking's honest scores (extra hard-label and no-augmentation evaluations)."),
  })
  .strict();

export type StudySpec = z.infer<typeof studySchema>;
export type StudyMethod = StudySpec['methods'][number];

export class StudyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StudyError';
  }
}

/** The row name of a method entry. */
export const methodLabel = (m: StudyMethod): string => m.label ?? m.method;

/** Validates a parsed study: the schema, then what the schema cannot know (registered names, unique rows). */
export function parseStudy(raw: unknown, source = 'the study'): StudySpec {
  const parsed = studySchema.safeParse(raw);
  if (!parsed.success)
    throw new StudyError(
      `${source} is not a valid study: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`).join('; ')}`,
    );
  const spec = parsed.data;
  for (const m of spec.methods)
    if (!METHODS.some((x) => x.name === m.method))
      throw new StudyError(
        `${source}: unknown method '${m.method}' (available: ${METHODS.map((x) => x.name).join(', ')})`,
      );
  for (const model of spec.evaluation.models)
    try {
      createNetwork(model, [1, 28, 28], 10); // a spec check: nothing is initialised
    } catch (e) {
      if (e instanceof ModelSpecError) throw new StudyError(`${source}: evaluation model: ${e.message}`);
      throw e;
    }
  const labels = spec.methods.map(methodLabel);
  const twice = labels.find((l, i) => labels.indexOf(l) !== i);
  if (twice)
    throw new StudyError(`${source}: two method entries are named '${twice}'; give one a distinct 'label'`);
  if (spec.methods.length === 0 && spec.baselines.length === 0)
    throw new StudyError(`${source} names neither methods nor baselines: nothing to run`);
  return spec;
}

/**
 * Reads and validates a study file (.json, .yaml or .yml).
 *
 * @example const spec = loadStudyFile('studies/quick.yaml'); // spec.methods[0].method === 'dm'
 */
export function loadStudyFile(path: string): StudySpec {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new StudyError(`cannot read study file ${path}: ${(e as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = path.endsWith('.json') ? JSON.parse(text) : yaml.load(text);
  } catch (e) {
    throw new StudyError(
      `${path} is not valid ${path.endsWith('.json') ? 'JSON' : 'YAML'}: ${(e as Error).message}`,
    );
  }
  return parseStudy(raw, path);
}
