// `distillery report <run-dir>`: one self-contained HTML file (no network, no
// scripts): the configuration, the loss curve and accuracy over iterations as
// inline SVG, the final image grid, and the evaluation next to the random subset.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { RunDir } from '../distill/rundir.js';

interface ScoreLike {
  mean: number;
  std: number;
  runs: number[];
}

const esc = (s: string) =>
  s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c] as string);

/** A polyline chart of (x, y) points as inline SVG. */
function svgChart(points: [number, number][], label: string, yFormat: (v: number) => string): string {
  if (points.length === 0) return `<p>No ${esc(label)} recorded.</p>`;
  const [w, h, pad] = [640, 220, 40];
  const xs = points.map((p) => p[0]);
  const ys = points.map((p) => p[1]);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  const [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  const sx = (x: number) => pad + ((x - x0) / Math.max(1e-12, x1 - x0)) * (w - 2 * pad);
  const sy = (y: number) => h - pad - ((y - y0) / Math.max(1e-12, y1 - y0)) * (h - 2 * pad);
  const path = points.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ');
  return `<svg width="${w}" height="${h}" role="img" aria-label="${esc(label)}">
<rect x="0" y="0" width="${w}" height="${h}" fill="#fff" stroke="#ccc"/>
<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="${path}"/>
${points.length < 30 ? points.map(([x, y]) => `<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="3" fill="#1f77b4"/>`).join('') : ''}
<text x="${pad}" y="16" font-size="12">${esc(label)}</text>
<text x="4" y="${sy(y1) + 4}" font-size="10">${esc(yFormat(y1))}</text>
<text x="4" y="${sy(y0) + 4}" font-size="10">${esc(yFormat(y0))}</text>
<text x="${pad}" y="${h - 8}" font-size="10">iteration ${x0}</text>
<text x="${w - pad - 60}" y="${h - 8}" font-size="10">${x1}</text>
</svg>`;
}

interface SavedEvaluation {
  models: string[];
  protocols: Record<string, { epochs: number; augment: string; precision: string }>;
  distilled: Record<string, ScoreLike>;
  randomSubset: Record<string, ScoreLike> | null;
  createdAt?: string;
}

/** The results `distillery eval` saved in ARTIFACT/evaluations/ (other architectures, protocols). */
function savedEvaluations(artifact: string, fmt: (s: ScoreLike | undefined) => string): string {
  const dir = join(artifact, 'evaluations');
  if (!existsSync(dir)) return '';
  const rows = readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .flatMap((f) => {
      let e: SavedEvaluation;
      try {
        e = JSON.parse(readFileSync(join(dir, f), 'utf8')) as SavedEvaluation;
        if (!Array.isArray(e.models) || typeof e.distilled !== 'object') throw new Error('not an evaluation');
      } catch (err) {
        console.error(
          `distillery: warning: skipping ${join(dir, f)} (${err instanceof Error ? err.message : String(err)})`,
        );
        return [];
      }
      return e.models.map((m) => {
        const p = e.protocols?.[m];
        const protocol = p ? `${p.epochs} epochs, ${esc(p.augment)}, ${esc(p.precision)}` : '';
        return `<tr><td>${esc(m)}</td><td>${fmt(e.distilled[m])}</td><td>${fmt(e.randomSubset?.[m])}</td><td>${protocol}</td></tr>`;
      });
    });
  if (!rows.length) return '';
  return `<h2>Other evaluations (<code>distillery eval</code>)</h2>
<table><tr><th>model</th><th>distilled set</th><th>random real subset</th><th>protocol</th></tr>
${rows.join('\n')}</table>`;
}

export function renderReport(dir: string): string {
  const run = new RunDir(dir);
  const record = run.readRecord();
  const metrics = run.readMetrics();
  const losses = metrics
    .filter((m) => typeof m.loss === 'number')
    .map((m) => [m.iteration as number, m.loss as number] as [number, number]);
  const model = record.config.evalModel ?? record.config.model;
  const evals = metrics.filter((m) => m.eval) as {
    iteration: number;
    eval: Record<string, ScoreLike>;
    randomSubset?: Record<string, ScoreLike> | null;
    protocol?: { epochs: number; augment: string; precision: string };
  }[];
  const acc = evals
    .filter((m) => m.eval[model])
    .map((m) => [m.iteration, 100 * m.eval[model].mean] as [number, number]);
  const last = evals[evals.length - 1];
  const fmt = (s: ScoreLike | undefined) =>
    s
      ? `${(100 * s.mean).toFixed(2)} &plusmn; ${(100 * s.std).toFixed(2)} (${s.runs.length} networks)`
      : '&ndash;';
  const grid = join(run.artifact, 'grid.png');
  const img = existsSync(grid)
    ? `<img alt="distilled images, one row per class" src="data:image/png;base64,${readFileSync(grid).toString('base64')}">`
    : '<p>No artifact yet (the run has not finished).</p>';
  const rows = Object.entries(record.config)
    .map(([k, v]) => `<tr><th>${esc(k)}</th><td><code>${esc(JSON.stringify(v))}</code></td></tr>`)
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Distillery run ${esc(dir)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:900px;margin:2em auto;color:#222}table{border-collapse:collapse}th,td{border:1px solid #ddd;padding:4px 8px;text-align:left}img{image-rendering:pixelated;max-width:100%;border:1px solid #ccc}</style>
</head><body>
<h1>${esc(record.config.method)} on ${esc(record.config.dataset)}, ${record.config.ipc} images per class</h1>
<p>Run directory <code>${esc(dir)}</code>, started ${esc(record.createdAt)}; Distillery ${esc(record.versions.distillery)}, libtorch ${esc(record.versions.libtorch)}, ${record.threads} threads; dataset checksum <code>${esc(record.dataset.checksum.slice(0, 16))}</code>.</p>
<h2>Evaluation</h2>
<table><tr><th>model</th><th>distilled set</th><th>random real subset, same size</th></tr>
<tr><td>${esc(model)}</td><td>${fmt(last?.eval[model])}</td><td>${fmt(last?.randomSubset?.[model] ?? undefined)}</td></tr></table>
<p>Protocol: ${last?.protocol ? `${last.protocol.epochs} epochs, augmentation ${esc(last.protocol.augment)}, ${esc(last.protocol.precision)}` : 'not evaluated yet'}; SGD momentum 0.9, lr 0.01 (or the learned lr) decayed &times;0.1 halfway; test accuracy after the last epoch.</p>
${savedEvaluations(run.artifact, fmt)}
<h2>Loss</h2>
${svgChart(losses, `${record.config.method} matching loss`, (v) => v.toPrecision(3))}
<h2>Accuracy over iterations</h2>
${svgChart(acc, `${model} test accuracy (%)`, (v) => v.toFixed(1))}
<h2>Distilled images</h2>
${img}
<h2>Configuration</h2>
<table>${rows}</table>
</body></html>
`;
}
