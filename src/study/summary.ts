// A study's summary: one row per (dataset, IPC, method or baseline), the method's seeds (its K
// distilled sets) pooled with their networks, written as summary.json (for the report) and
// summary.md (a leaderboard to read).
import { join } from 'node:path';
import { writeFileAtomic } from '../engine/files.js';
import { summarize, type Score } from '../eval/index.js';
import type { HonestScores } from './scores.js';
import type { CellResult } from './runner.js';
import type { StudySpec } from './spec.js';

export interface SummaryRow {
  dataset: string;
  ipc: number;
  label: string;
  kind: 'method' | 'baseline';
  method?: string;
  /** Distilled sets (seeds) pooled into the scores. */
  sets: number;
  /** Per evaluation model: mean +- std over every network of every set (fractions). */
  accuracy: Record<string, Score>;
  labels: 'hard' | 'soft';
  scores?: HonestScores;
  secondsPerIteration?: number;
  distillSeconds?: number;
  peakMiB?: number;
  storageBytes?: number;
  imagesEquivalent?: number;
}

export interface StudySummary {
  name: string;
  mainModel: string;
  models: string[];
  /** How every number was obtained, said once for every reader. */
  protocolNote: string;
  rows: SummaryRow[];
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const meanOf = (xs: (number | undefined)[]) => {
  const v = xs.filter((x): x is number => x !== undefined);
  return v.length ? mean(v) : undefined;
};

function pooled(cells: CellResult[], model: string): Score | undefined {
  const runs = cells.flatMap((c) => c.accuracy[model]?.runs ?? []);
  return runs.length ? summarize(runs) : undefined;
}

function meanScores(cells: CellResult[]): HonestScores | undefined {
  const all = cells.map((c) => c.scores).filter((s): s is HonestScores => s !== undefined);
  if (all.length === 0) return undefined;
  return {
    hlr: mean(all.map((s) => s.hlr)),
    ior: mean(all.map((s) => s.ior)),
    lrs: mean(all.map((s) => s.lrs)),
    ars: mean(all.map((s) => s.ars)),
  };
}

/** Rows of the finished cells, in the study's order (datasets, IPCs, baselines then methods). */
export function summarizeStudy(spec: StudySpec, results: CellResult[]): StudySummary {
  const groups = new Map<string, CellResult[]>();
  for (const r of results) {
    const id = `${r.dataset}|${r.ipc}|${r.kind}|${r.label}`;
    groups.set(id, [...(groups.get(id) ?? []), r]);
  }
  const rows: SummaryRow[] = [...groups.values()].map((cells) => {
    const c = cells[0];
    const accuracy: Record<string, Score> = {};
    for (const m of spec.evaluation.models) {
      const s = pooled(cells, m);
      if (s) accuracy[m] = s;
    }
    return {
      dataset: c.dataset,
      ipc: c.ipc,
      label: c.label,
      kind: c.kind,
      method: c.method,
      sets: cells.length,
      accuracy,
      labels: c.labels,
      scores: meanScores(cells),
      secondsPerIteration: meanOf(cells.map((x) => x.secondsPerIteration)),
      distillSeconds: meanOf(cells.map((x) => x.distillSeconds)),
      peakMiB: meanOf(cells.map((x) => x.peakMiB)),
      storageBytes: c.storage?.bytes,
      imagesEquivalent: c.storage?.imagesEquivalent,
    };
  });
  const order = (r: SummaryRow) => [spec.datasets.indexOf(r.dataset), r.ipc, r.kind === 'baseline' ? 0 : 1];
  rows.sort((a, b) => {
    const [x, y] = [order(a), order(b)];
    return x[0] - y[0] || x[1] - y[1] || x[2] - y[2];
  });
  const e = spec.evaluation;
  return {
    name: spec.name,
    mainModel: e.models[0],
    models: [...e.models],
    protocolNote:
      `Final-epoch test accuracy of ${e.runs} network(s) per model and set trained from scratch for ${e.epochs} epochs ` +
      `(${e.precision}); the full-data baseline: 1 network, ${e.fullEpochs} epoch(s). Nothing is selected on the ` +
      'test split: no best epoch, no learning-rate search. Scores after DD-Ranking on fractions in [0, 1] ' +
      '(HLR, IOR: differences of accuracies; LRS, ARS: normalised to [0, 1]).',
    rows,
  };
}

const pct = (s: Score | undefined) =>
  s
    ? s.runs.length > 1
      ? `${(100 * s.mean).toFixed(2)} +- ${(100 * s.std).toFixed(2)}`
      : `${(100 * s.mean).toFixed(2)} (n=1)`
    : '';
const num = (x: number | undefined, digits: number) => (x === undefined ? '' : x.toFixed(digits));

/** The leaderboard as Markdown. */
export function summaryMarkdown(s: StudySummary): string {
  const cross = s.models.slice(1);
  const head = [
    'dataset',
    'ipc',
    'row',
    `${s.mainModel} (%)`,
    ...cross.map((m) => `${m} (%)`),
    'HLR',
    'IOR',
    'LRS',
    'ARS',
    's / iteration',
    'peak MiB',
    'storage bytes',
  ];
  const lines = [
    `# Study '${s.name}'`,
    '',
    s.protocolNote,
    '',
    `| ${head.join(' | ')} |`,
    `|${head.map(() => '---').join('|')}|`,
    ...s.rows
      .map((r) =>
        [
          r.dataset,
          r.ipc === 0 ? 'all' : String(r.ipc),
          r.kind === 'baseline'
            ? `${r.label} (baseline)`
            : `${r.label}${r.labels === 'soft' ? ' (soft labels)' : ''}`,
          pct(r.accuracy[s.mainModel]),
          ...cross.map((m) => pct(r.accuracy[m])),
          num(r.scores?.hlr, 3),
          num(r.scores?.ior, 3),
          num(r.scores?.lrs, 3),
          num(r.scores?.ars, 3),
          num(r.secondsPerIteration, 3),
          num(r.peakMiB, 0),
          r.storageBytes === undefined ? '' : String(r.storageBytes),
        ].join(' | '),
      )
      .map((l) => `| ${l} |`),
    '',
  ];
  return lines.join('\n');
}

export function writeSummaries(dir: string, spec: StudySpec, results: CellResult[]): StudySummary {
  const s = summarizeStudy(spec, results);
  writeFileAtomic(join(dir, 'summary.json'), JSON.stringify(s, null, 2) + '\n');
  writeFileAtomic(join(dir, 'summary.md'), summaryMarkdown(s));
  return s;
}
