// `distillery methods`: the survey's taxonomy with the methods implemented here, and the
// orthogonal axes: how the set is stored (parameterizations) and how its labels are made.
import '../../distill/methods/index.js';
import { METHODS } from '../../distill/registry.js';
import { parameterizationKinds } from '../../param/index.js';
import type { z } from 'zod';
import { createReporter, UsageError } from '../output.js';

// Family -> sub-families (a method's subFamily names one of them) and the methods each covers in the survey.
const TAXONOMY: [string, [string, string][]][] = [
  [
    'performance matching',
    [
      ['meta-learning', 'DD'],
      ['kernel ridge regression', 'KIP, RFAD, FRePo'],
    ],
  ],
  [
    'parameter matching',
    [
      ['single step: gradient matching', 'DC, DSA, IDC'],
      ['multi step: trajectory matching', 'MTT, TESLA, FTD; since the survey: DATM'],
    ],
  ],
  [
    'distribution matching',
    [
      ['feature mean matching', 'DM; since the survey: IDM, M3D'],
      ['layer-wise alignment', 'CAFE'],
      ['characteristic function matching', 'since the survey: NCFM'],
    ],
  ],
];

export function methodsCommand(o: { json?: boolean }): void {
  const out = createReporter(o.json ?? false);
  const lines: string[] = [];
  for (const [family, subs] of TAXONOMY) {
    lines.push(family);
    const listed = (m: (typeof METHODS)[number]) => `    * ${m.name}: ${m.summary}\n      needs: ${m.needs}`;
    for (const [sub, covers] of subs) {
      lines.push(`  ${sub} (${covers})`);
      for (const m of METHODS.filter((x) => x.family === family && x.subFamily === sub))
        lines.push(listed(m));
    }
    // A method registered with a sub-family the taxonomy does not name is still listed.
    const named = new Set(subs.map(([sub]) => sub));
    for (const m of METHODS.filter((x) => x.family === family && !named.has(x.subFamily)))
      lines.push(`  ${m.subFamily}`, listed(m));
  }
  lines.push('', 'Methods marked * are implemented here; the others named are planned.');
  const kinds = parameterizationKinds();
  lines.push(
    '',
    'parameterizations (how the set is stored; --set parameterization.kind=<name>, any method that differentiates through decode())',
  );
  for (const k of kinds) lines.push(`  * ${k.kind}: ${k.summary}`);
  lines.push(
    '',
    'labels (--set labels.init=hard|teacher|uniform, labels.learn=true for methods whose objective uses them)',
  );
  for (const m of METHODS)
    lines.push(
      `  ${m.name}: ${m.labelGradients ? 'learnable' : 'not learnable (labels do not enter the objective)'}`,
    );
  out.result(lines.join('\n'), {
    parameterizations: kinds.map((k) => ({ kind: k.kind, summary: k.summary })),
    methods: METHODS.map((m) => ({
      name: m.name,
      family: m.family,
      subFamily: m.subFamily,
      summary: m.summary,
      needs: m.needs,
      learnableLabels: m.labelGradients ?? false,
    })),
  });
}

interface SettingInfo {
  key: string;
  type: string;
  default?: unknown;
  meaning: string;
}

type AnySchema = z.ZodTypeAny & { _def: Record<string, unknown> };

/** The schema under defaults, optionals and refinements, and the first description met on the way. */
function unwrap(schema: AnySchema): { inner: AnySchema; description?: string; default?: unknown } {
  let s = schema;
  let description = s.description;
  let value: unknown;
  for (;;) {
    const def = s._def;
    if (def.typeName === 'ZodDefault') value ??= (def.defaultValue as () => unknown)();
    const next = (def.innerType ?? def.schema) as AnySchema | undefined;
    if (!next || !['ZodDefault', 'ZodOptional', 'ZodNullable', 'ZodEffects'].includes(def.typeName as string))
      break;
    s = next;
    description ??= s.description;
  }
  return { inner: s, description, default: value };
}

function typeName(s: AnySchema): string {
  const def = s._def;
  switch (def.typeName) {
    case 'ZodNumber':
      return 'number';
    case 'ZodBoolean':
      return 'boolean';
    case 'ZodString':
      return 'string';
    case 'ZodEnum':
      return (def.values as string[]).join(' | ');
    case 'ZodLiteral':
      return JSON.stringify(def.value);
    case 'ZodUnion':
      return (def.options as AnySchema[]).map((o) => typeName(unwrap(o).inner)).join(' | ');
    case 'ZodObject':
      return 'object';
    case 'ZodArray':
      return 'list';
    default:
      return String(def.typeName).replace(/^Zod/, '').toLowerCase();
  }
}

/** A method's methodConfig keys with type, default and meaning (from the schema's descriptions). */
export function methodSettings(name: string): SettingInfo[] {
  const m = METHODS.find((x) => x.name === name);
  if (!m)
    throw new UsageError(`unknown method '${name}' (expected ${METHODS.map((x) => x.name).join(', ')})`);
  const { inner } = unwrap(m.schema as unknown as AnySchema);
  const shape = (inner._def.shape as (() => Record<string, AnySchema>) | undefined)?.();
  if (!shape) return [];
  return Object.entries(shape).map(([key, field]) => {
    const u = unwrap(field);
    return { key, type: typeName(u.inner), default: u.default, meaning: u.description ?? '' };
  });
}

/** `distillery methods <name>`: the method's settings (methodConfig.<key>). */
export function methodCommand(name: string, o: { json?: boolean }): void {
  const out = createReporter(o.json ?? false);
  const settings = methodSettings(name);
  const m = METHODS.find((x) => x.name === name)!;
  const lines = [
    `${m.name} (${m.family}: ${m.subFamily}): ${m.summary}`,
    `needs: ${m.needs}`,
    '',
    'methodConfig settings (--set methodConfig.<key>=<value>):',
    ...settings.map(
      (x) =>
        `  ${x.key} (${x.type}${x.default !== undefined ? `, default ${JSON.stringify(x.default)}` : ''})${x.meaning ? `: ${x.meaning}` : ''}`,
    ),
  ];
  out.result(lines.join('\n'), { method: m.name, settings });
}
