// `distillery report <study-dir>`: one self-contained HTML dashboard of a study (works offline: the
// charting library, Chart.js, and every image are inlined; the page fetches nothing):
//  - the leaderboard, sortable by any column;
//  - accuracy vs IPC per method, the baselines as dashed reference lines;
//  - accuracy vs distillation time per iteration and vs peak memory (the survey's cost plots);
//  - the cross-architecture heatmap; DD-Ranking's scores;
//  - per method and IPC the image grid (one row per class, class names beside it) and the loss curve.
// The page publishes what it drew in `window.distilleryCharts` (chart id -> type, series, points) so
// a browser test can check it without reading pixels.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { RunDir } from '../distill/rundir.js';
import type { CellResult } from '../study/runner.js';
import { cellRunDir, currentResults, readResults } from '../study/runner.js';
import { parseStudy } from '../study/spec.js';
import { summarizeStudy, type StudySummary } from '../study/summary.js';
import { chartLibrary, esc, scriptJson } from './charts.js';

interface RunPanel {
  key: string;
  label: string;
  dataset: string;
  ipc: number;
  classes: string[];
  grid: string | null;
  loss: [number, number][];
}

/** Image grid and loss curve of the first seed's run of every method cell that has one. */
function runPanels(dir: string, results: CellResult[]): RunPanel[] {
  const seen = new Set<string>();
  const out: RunPanel[] = [];
  for (const r of results) {
    if (r.kind !== 'method') continue;
    const id = `${r.dataset}|${r.ipc}|${r.label}`;
    if (seen.has(id)) continue;
    seen.add(id);
    const run = new RunDir(cellRunDir(dir, r.key, r.hash));
    const gridFile = join(run.artifact, 'grid.png');
    const metaFile = join(run.artifact, 'meta.json');
    const classes = existsSync(metaFile)
      ? ((JSON.parse(readFileSync(metaFile, 'utf8')) as { dataset: { classes: string[] } }).dataset.classes ??
        [])
      : [];
    const loss = run
      .readMetrics()
      .filter((m) => typeof m.loss === 'number' && typeof m.iteration === 'number')
      .map((m) => [m.iteration as number, m.loss as number] as [number, number]);
    out.push({
      key: r.key,
      label: r.label,
      dataset: r.dataset,
      ipc: r.ipc,
      classes,
      grid: existsSync(gridFile) ? readFileSync(gridFile).toString('base64') : null,
      loss,
    });
  }
  return out;
}

function panelHtml(p: RunPanel, i: number): string {
  const names = p.classes.map((c) => `<li>${esc(c)}</li>`).join('');
  const grid = p.grid
    ? `<div class="grid"><img alt="${esc(p.label)} images, one row per class" src="data:image/png;base64,${p.grid}"><ol class="classes" start="0">${names}</ol></div>`
    : '<p>No image grid (the run has no artifact).</p>';
  return `<section class="panel"><h3>${esc(p.label)} on ${esc(p.dataset)}, IPC ${p.ipc}</h3>
${grid}<div class="chart"><canvas id="loss-${i}" aria-label="${esc(p.label)} loss curve"></canvas></div></section>`;
}

function heatmapHtml(s: StudySummary): string {
  const rows = s.rows.filter((r) => Object.keys(r.accuracy).length > 0);
  const colour = (v: number) => `hsl(${Math.round(120 * v)}, 70%, ${Math.round(85 - 35 * v)}%)`;
  const body = rows
    .map(
      (r) =>
        `<tr><th>${esc(r.dataset)} IPC ${r.ipc === 0 ? 'all' : r.ipc}: ${esc(r.label)}</th>${s.models
          .map((m) => {
            const a = r.accuracy[m];
            return a
              ? `<td style="background:${colour(a.mean)}">${(100 * a.mean).toFixed(1)}</td>`
              : '<td class="missing">&ndash;</td>';
          })
          .join('')}</tr>`,
    )
    .join('\n');
  return `<table class="heatmap" id="heatmap"><caption>Test accuracy (%) of each evaluation model (columns) trained on each set (rows)</caption>
<tr><th></th>${s.models.map((m) => `<th>${esc(m)}</th>`).join('')}</tr>
${body}</table>`;
}

function leaderboardHtml(s: StudySummary): string {
  const cols: [string, string][] = [
    ['dataset', 'text'],
    ['IPC', 'num'],
    ['method / baseline', 'text'],
    [`${s.mainModel} (%)`, 'num'],
    ['+-', 'num'],
    ['sets', 'num'],
    ['LRS', 'num'],
    ['ARS', 'num'],
    ['IOR', 'num'],
    ['HLR', 'num'],
    ['s / iteration', 'num'],
    ['peak MiB', 'num'],
    ['storage bytes', 'num'],
  ];
  const cell = (v: number | undefined, digits: number) =>
    v === undefined ? '<td data-v="">&ndash;</td>' : `<td data-v="${v}">${v.toFixed(digits)}</td>`;
  const body = s.rows
    .map((r) => {
      const a = r.accuracy[s.mainModel];
      const name =
        r.kind === 'baseline'
          ? `${r.label} (baseline)`
          : `${r.label}${r.labels === 'soft' ? ' (soft labels)' : ''}`;
      return `<tr class="${r.kind}"><td data-v="${esc(r.dataset)}">${esc(r.dataset)}</td>${cell(r.ipc, 0)}<td data-v="${esc(name)}">${esc(name)}</td>${cell(a ? 100 * a.mean : undefined, 2)}${cell(a ? 100 * a.std : undefined, 2)}${cell(r.sets, 0)}${cell(r.scores?.lrs, 3)}${cell(r.scores?.ars, 3)}${cell(r.scores?.ior, 3)}${cell(r.scores?.hlr, 3)}${cell(r.secondsPerIteration, 3)}${cell(r.peakMiB, 0)}${cell(r.storageBytes, 0)}</tr>`;
    })
    .join('\n');
  return `<table id="leaderboard" class="sortable"><thead><tr>${cols
    .map(
      ([c, t], i) =>
        `<th data-col="${i}" data-type="${t}" tabindex="0" title="sort by ${esc(c)}">${esc(c)}</th>`,
    )
    .join('')}</tr></thead><tbody>
${body}</tbody></table>`;
}

// The page's own script: the charts from the embedded data, the sortable table. Plain ES2017.
const PAGE_SCRIPT = `
(function () {
  var data = JSON.parse(document.getElementById('study-data').textContent);
  var s = data.summary, main = s.mainModel;
  var palette = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#17becf', '#bcbd22', '#7f7f7f'];
  var drawn = {};
  window.distilleryCharts = drawn;
  function record(id, chart) {
    drawn[id] = {
      type: chart.config.type,
      series: chart.data.datasets.map(function (d) { return { label: d.label, points: d.data.length }; })
    };
  }
  function axis(title, type) { return { type: type || 'linear', title: { display: true, text: title } }; }
  function chart(id, type, datasets, xTitle, yTitle, title, xType) {
    var el = document.getElementById(id);
    if (!el) return;
    var c = new Chart(el, {
      type: type,
      data: { datasets: datasets },
      options: {
        animation: false, responsive: true, maintainAspectRatio: false,
        plugins: { title: { display: true, text: title }, legend: { position: 'bottom' } },
        scales: { x: axis(xTitle, xType), y: axis(yTitle) }
      }
    });
    record(id, c);
  }
  var methods = s.rows.filter(function (r) { return r.kind === 'method' && r.accuracy[main]; });
  var baselines = s.rows.filter(function (r) { return r.kind === 'baseline' && r.accuracy[main]; });
  var series = {};
  methods.forEach(function (r) {
    var k = r.label + ' (' + r.dataset + ')';
    (series[k] = series[k] || []).push(r);
  });
  var ipcs = s.rows.filter(function (r) { return r.ipc > 0; }).map(function (r) { return r.ipc; });
  var lo = ipcs.length ? Math.min.apply(null, ipcs) : 1, hi = ipcs.length ? Math.max.apply(null, ipcs) : 1;
  var i = 0, byIpc = [];
  Object.keys(series).forEach(function (k) {
    var colour = palette[i++ % palette.length];
    byIpc.push({ label: k, borderColor: colour, backgroundColor: colour, showLine: true,
      data: series[k].sort(function (a, b) { return a.ipc - b.ipc; })
        .map(function (r) { return { x: r.ipc, y: 100 * r.accuracy[main].mean }; }) });
  });
  var refs = {};
  baselines.forEach(function (r) {
    var k = r.label + ' (' + r.dataset + ')';
    (refs[k] = refs[k] || []).push(r);
  });
  Object.keys(refs).forEach(function (k) {
    var rows = refs[k];
    var pts = rows[0].ipc === 0
      ? [{ x: lo, y: 100 * rows[0].accuracy[main].mean }, { x: hi, y: 100 * rows[0].accuracy[main].mean }]
      : rows.sort(function (a, b) { return a.ipc - b.ipc; }).map(function (r) { return { x: r.ipc, y: 100 * r.accuracy[main].mean }; });
    byIpc.push({ label: k + ' [baseline]', borderColor: '#999', backgroundColor: '#999', borderDash: [6, 4], showLine: true, pointRadius: 2, data: pts });
  });
  chart('acc-ipc', 'scatter', byIpc, 'images per class (IPC)', main + ' test accuracy (%)', 'Accuracy vs IPC', 'logarithmic');
  function costSeries(field) {
    var out = [], j = 0;
    Object.keys(series).forEach(function (k) {
      var colour = palette[j++ % palette.length];
      var pts = series[k].filter(function (r) { return r[field] > 0; })
        .map(function (r) { return { x: r[field], y: 100 * r.accuracy[main].mean, ipc: r.ipc }; });
      if (pts.length) out.push({ label: k, borderColor: colour, backgroundColor: colour, pointRadius: 5, data: pts });
    });
    return out;
  }
  chart('acc-time', 'scatter', costSeries('secondsPerIteration'), 'seconds per distillation iteration', main + ' test accuracy (%)', 'Accuracy vs distillation time', 'logarithmic');
  chart('acc-memory', 'scatter', costSeries('peakMiB'), 'peak memory during distillation (MiB)', main + ' test accuracy (%)', 'Accuracy vs memory', 'logarithmic');
  var scored = methods.filter(function (r) { return r.scores; });
  if (scored.length) {
    var el = document.getElementById('scores');
    var c = new Chart(el, {
      type: 'bar',
      data: {
        labels: scored.map(function (r) { return r.label + ' ' + r.dataset + ' IPC ' + r.ipc; }),
        datasets: [
          { label: 'LRS (label-robust)', backgroundColor: '#1f77b4', data: scored.map(function (r) { return r.scores.lrs; }) },
          { label: 'ARS (augmentation-robust)', backgroundColor: '#ff7f0e', data: scored.map(function (r) { return r.scores.ars; }) }
        ]
      },
      options: { animation: false, responsive: true, maintainAspectRatio: false,
        plugins: { title: { display: true, text: "DD-Ranking's scores (0.27 = no better than random)" }, legend: { position: 'bottom' } },
        scales: { x: { title: { display: true, text: 'set' } }, y: { min: 0, max: 1, title: { display: true, text: 'score in [0, 1]' } } } }
    });
    record('scores', c);
  }
  data.panels.forEach(function (p, k) {
    if (!p.loss.length) return;
    chart('loss-' + k, 'scatter', [{ label: p.label + ' loss', borderColor: '#1f77b4', backgroundColor: '#1f77b4', showLine: true, pointRadius: 0,
      data: p.loss.map(function (q) { return { x: q[0], y: q[1] }; }) }], 'iteration', 'matching loss', p.label + ' loss, IPC ' + p.ipc);
  });
  var table = document.getElementById('leaderboard');
  var dir = {};
  Array.prototype.forEach.call(table.querySelectorAll('th'), function (th) {
    function sort() {
      var col = +th.dataset.col, num = th.dataset.type === 'num';
      dir[col] = dir[col] === 'asc' ? 'desc' : 'asc';
      var sign = dir[col] === 'asc' ? 1 : -1;
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col].dataset.v, y = b.cells[col].dataset.v;
        if (x === '' || y === '') return (x === '') - (y === '');
        return sign * (num ? (+x) - (+y) : x.localeCompare(y));
      });
      rows.forEach(function (r) { body.appendChild(r); });
      Array.prototype.forEach.call(table.querySelectorAll('th'), function (h) { h.removeAttribute('aria-sort'); });
      th.setAttribute('aria-sort', dir[col] === 'asc' ? 'ascending' : 'descending');
    }
    th.addEventListener('click', sort);
    th.addEventListener('keydown', function (e) { if (e.key === 'Enter') sort(); });
  });
})();
`;

const STYLE = `body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;color:#222;padding:0 1em}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ddd;padding:4px 8px;text-align:right}
td:first-child,th:first-child,td:nth-child(3){text-align:left}
table.sortable th{cursor:pointer;background:#f4f4f4}table.sortable th[aria-sort=ascending]::after{content:' \\25B2'}
table.sortable th[aria-sort=descending]::after{content:' \\25BC'}tr.baseline td{color:#555;font-style:italic}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(360px,1fr));gap:1.5em}
.chart{position:relative;height:320px}.panel{border-top:1px solid #ddd;padding:0.5em 0}
.grid{display:flex;gap:1em;align-items:flex-start}.grid img{image-rendering:pixelated;max-width:70%;border:1px solid #ccc}
ol.classes{margin:0;font-size:0.85em}.heatmap td{min-width:4em}.missing{color:#aaa}`;

/**
 * The dashboard HTML of a study directory (study.json and results.jsonl as `distillery study` writes them).
 *
 * @example writeFileAtomic('out/report.html', renderStudyReport('studies-out/quick'))
 */
export function renderStudyReport(dir: string): string {
  const studyFile = join(dir, 'study.json');
  if (!existsSync(studyFile))
    throw new Error(`${dir} is not a study directory (no study.json); run \`distillery study\` first`);
  const spec = parseStudy(JSON.parse(readFileSync(studyFile, 'utf8')), studyFile);
  const results = currentResults(spec, readResults(dir));
  const summary = summarizeStudy(spec, results);
  const panels = runPanels(dir, results);
  const hasScores = summary.rows.some((r) => r.scores);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Distillery study ${esc(summary.name)}</title>
<style>${STYLE}</style>
<script>${chartLibrary()}</script>
</head><body>
<h1>Study '${esc(summary.name)}'</h1>
<p>${esc(summary.protocolNote)} ${results.length} finished cell(s) in <code>${esc(dir)}</code>.</p>
<h2>Leaderboard</h2>
<p>Click a column to sort. Accuracy on ${esc(summary.mainModel)}, mean &plusmn; std over every network of every distilled set.</p>
${leaderboardHtml(summary)}
<h2>Accuracy and cost</h2>
<div class="charts">
<div class="chart"><canvas id="acc-ipc" aria-label="accuracy vs IPC"></canvas></div>
<div class="chart"><canvas id="acc-time" aria-label="accuracy vs distillation time"></canvas></div>
<div class="chart"><canvas id="acc-memory" aria-label="accuracy vs memory"></canvas></div>
${hasScores ? '<div class="chart"><canvas id="scores" aria-label="honest scores"></canvas></div>' : ''}
</div>
<h2>Cross-architecture</h2>
${heatmapHtml(summary)}
<h2>Distilled sets</h2>
${panels.map(panelHtml).join('\n')}
<script type="application/json" id="study-data">${scriptJson({ summary, panels: panels.map(({ grid: _, ...p }) => p) })}</script>
<script>${PAGE_SCRIPT}</script>
</body></html>
`;
}
