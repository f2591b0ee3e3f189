// `distillery report <run-dir>`: one self-contained HTML file (works offline: Chart.js and the
// images are inlined, nothing is fetched): the configuration, the loss curve and the accuracy over
// iterations (with the random subset as a reference line), the final image grid with class names,
// and the evaluation next to the random subset. The page publishes what it drew in
// `window.distilleryCharts` for browser tests.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { RunDir } from '../distill/rundir.js';
import { chartLibrary, esc, scriptJson } from './charts.js';

interface ScoreLike {
  mean: number;
  std: number;
  runs: number[];
}

/** The dataset's class names from the artifact's meta.json (empty when there is no artifact yet). */
function readClasses(artifact: string): string[] {
  const meta = join(artifact, 'meta.json');
  if (!existsSync(meta)) return [];
  return (
    (JSON.parse(readFileSync(meta, 'utf8')) as { dataset?: { classes?: string[] } }).dataset?.classes ?? []
  );
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

const RUN_SCRIPT = `
(function () {
  var d = JSON.parse(document.getElementById('run-data').textContent);
  var drawn = {};
  window.distilleryCharts = drawn;
  function chart(id, datasets, xTitle, yTitle, title) {
    var el = document.getElementById(id);
    if (!el || !datasets.some(function (s) { return s.data.length; })) return;
    var c = new Chart(el, { type: 'scatter', data: { datasets: datasets },
      options: { animation: false, responsive: true, maintainAspectRatio: false,
        plugins: { title: { display: true, text: title }, legend: { position: 'bottom' } },
        scales: { x: { title: { display: true, text: xTitle } }, y: { title: { display: true, text: yTitle } } } } });
    drawn[id] = { type: c.config.type, series: datasets.map(function (s) { return { label: s.label, points: s.data.length }; }) };
  }
  function xy(points) { return points.map(function (p) { return { x: p[0], y: p[1] }; }); }
  chart('loss', [{ label: 'matching loss', showLine: true, pointRadius: 0, borderColor: '#1f77b4', backgroundColor: '#1f77b4', data: xy(d.loss) }],
    'iteration', 'loss', d.method + ' matching loss');
  var acc = [{ label: d.model + ' (distilled set)', showLine: true, borderColor: '#1f77b4', backgroundColor: '#1f77b4', data: xy(d.accuracy) }];
  if (d.random.length) acc.push({ label: 'random real subset', showLine: true, borderDash: [6, 4], borderColor: '#999', backgroundColor: '#999', data: xy(d.random) });
  chart('accuracy', acc, 'iteration', 'test accuracy (%)', d.model + ' test accuracy over iterations');
})();
`;

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
  // The random subset does not depend on the iteration: a horizontal reference line across the curve.
  const randomScore = evals.find((m) => m.randomSubset?.[model])?.randomSubset?.[model];
  const xs = acc.map((p) => p[0]);
  const random: [number, number][] =
    randomScore && xs.length
      ? [
          [Math.min(...xs), 100 * randomScore.mean],
          [Math.max(...xs, Math.min(...xs) + 1), 100 * randomScore.mean],
        ]
      : [];
  const classes = readClasses(run.artifact);
  const last = evals[evals.length - 1];
  const fmt = (s: ScoreLike | undefined) =>
    s
      ? `${(100 * s.mean).toFixed(2)} &plusmn; ${(100 * s.std).toFixed(2)} (${s.runs.length} networks)`
      : '&ndash;';
  const grid = join(run.artifact, 'grid.png');
  const names = classes.map((c) => `<li>${esc(c)}</li>`).join('');
  const img = existsSync(grid)
    ? `<div class="grid"><img alt="distilled images, one row per class" src="data:image/png;base64,${readFileSync(grid).toString('base64')}"><ol class="classes" start="0">${names}</ol></div>`
    : '<p>No artifact yet (the run has not finished).</p>';
  const rows = Object.entries(record.config)
    .map(([k, v]) => `<tr><th>${esc(k)}</th><td><code>${esc(JSON.stringify(v))}</code></td></tr>`)
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Distillery run ${esc(dir)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:900px;margin:2em auto;color:#222}table{border-collapse:collapse}th,td{border:1px solid #ddd;padding:4px 8px;text-align:left}img{image-rendering:pixelated;max-width:80%;border:1px solid #ccc}.chart{position:relative;height:300px}.grid{display:flex;gap:1em;align-items:flex-start}ol.classes{margin:0;font-size:0.85em}</style>
<script>${chartLibrary()}</script>
</head><body>
<h1>${esc(record.config.method)} on ${esc(record.config.dataset)}, ${record.config.ipc} images per class</h1>
<p>Run directory <code>${esc(dir)}</code>, started ${esc(record.createdAt)}; Distillery ${esc(record.versions.distillery)}, libtorch ${esc(record.versions.libtorch)}, ${record.threads} threads; dataset checksum <code>${esc(record.dataset.checksum.slice(0, 16))}</code>.</p>
<h2>Evaluation</h2>
<table><tr><th>model</th><th>distilled set</th><th>random real subset, same size</th></tr>
<tr><td>${esc(model)}</td><td>${fmt(last?.eval[model])}</td><td>${fmt(last?.randomSubset?.[model] ?? undefined)}</td></tr></table>
<p>Protocol: ${last?.protocol ? `${last.protocol.epochs} epochs, augmentation ${esc(last.protocol.augment)}, ${esc(last.protocol.precision)}` : 'not evaluated yet'}; SGD momentum 0.9, lr 0.01 (or the learned lr) decayed &times;0.1 halfway; test accuracy after the last epoch.</p>
${savedEvaluations(run.artifact, fmt)}
<h2>Loss</h2>
${losses.length ? '<div class="chart"><canvas id="loss" aria-label="matching loss over iterations"></canvas></div>' : '<p>No loss recorded.</p>'}
<h2>Accuracy over iterations</h2>
${acc.length ? '<div class="chart"><canvas id="accuracy" aria-label="test accuracy over iterations"></canvas></div>' : '<p>No evaluation recorded.</p>'}
<h2>Distilled images</h2>
${img}
<h2>Configuration</h2>
<table>${rows}</table>
<script type="application/json" id="run-data">${scriptJson({ method: record.config.method, model, loss: losses, accuracy: acc, random })}</script>
<script>${RUN_SCRIPT}</script>
</body></html>
`;
}
