// `distillery methods`: the survey's taxonomy with the methods implemented here, and the
// orthogonal axes: how the set is stored (parameterizations) and how its labels are made.
import '../../distill/methods/index.js';
import { METHODS } from '../../distill/registry.js';
import { parameterizationKinds } from '../../param/index.js';
import { createReporter } from '../output.js';

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
      ['multi step: trajectory matching', 'MTT, TESLA, FTD'],
    ],
  ],
  [
    'distribution matching',
    [
      ['feature mean matching', 'DM'],
      ['layer-wise alignment', 'CAFE'],
    ],
  ],
];

export function methodsCommand(o: { json?: boolean }): void {
  const out = createReporter(o.json ?? false);
  const lines: string[] = [];
  for (const [family, subs] of TAXONOMY) {
    lines.push(family);
    for (const [sub, covers] of subs) {
      lines.push(`  ${sub} (${covers})`);
      for (const m of METHODS.filter((x) => x.family === family && x.subFamily === sub)) {
        lines.push(`    * ${m.name}: ${m.summary}`, `      needs: ${m.needs}`);
      }
    }
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
