// The continual-learning result as a self-contained page: accuracy after each stage per memory kind
// (mean with a +- std band as error bars in the tooltip), Chart.js inlined.
import type { ContinualResult } from '../apps/continual.js';
import type { Score } from '../eval/index.js';
import { chartLibrary, esc, scriptJson } from './charts.js';

const SCRIPT = `
(function () {
  var d = JSON.parse(document.getElementById('continual-data').textContent);
  var palette = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b'];
  var sets = Object.keys(d.accuracy).map(function (m, i) {
    return { label: m, borderColor: palette[i % palette.length], backgroundColor: palette[i % palette.length], showLine: true,
      data: d.accuracy[m].map(function (s, k) { return { x: k + 1, y: 100 * s.mean, std: 100 * s.std }; }) };
  });
  var c = new Chart(document.getElementById('stages'), { type: 'scatter', data: { datasets: sets },
    options: { animation: false, responsive: true, maintainAspectRatio: false,
      plugins: { title: { display: true, text: 'Class-incremental accuracy on the classes seen so far' }, legend: { position: 'bottom' },
        tooltip: { callbacks: { label: function (ctx) { return ctx.dataset.label + ': ' + ctx.raw.y.toFixed(2) + ' +- ' + ctx.raw.std.toFixed(2); } } } },
      scales: { x: { title: { display: true, text: 'stage' }, ticks: { stepSize: 1 } }, y: { title: { display: true, text: 'test accuracy (%)' } } } } });
  window.distilleryCharts = { stages: { type: 'scatter', series: sets.map(function (s) { return { label: s.label, points: s.data.length }; }) } };
})();
`;

/** Mean +- std over runs; a single run has no spread to show. */
function cell(s: Score): string {
  const mean = (100 * s.mean).toFixed(2);
  return s.runs.length > 1 ? `${mean} &plusmn; ${(100 * s.std).toFixed(2)}` : mean;
}

export function renderContinualReport(r: ContinualResult): string {
  const runs = r.stageClasses.length;
  const rows = Object.entries(r.accuracy)
    .map(([m, scores]) => `<tr><th>${esc(m)}</th>${scores.map((s) => `<td>${cell(s)}</td>`).join('')}</tr>`)
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Continual learning on ${esc(r.dataset)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:900px;margin:2em auto;color:#222}table{border-collapse:collapse}th,td{border:1px solid #ddd;padding:4px 8px}.chart{position:relative;height:320px}</style>
<script>${chartLibrary()}</script></head><body>
<h1>Class-incremental learning on ${esc(r.dataset)}: ${r.stages} stages, ${r.ipc} images per class</h1>
<p>At each stage the memory gains ${r.ipc} images for each new class (selected or distilled from that stage's classes only); a ${esc(r.protocol.model)} is trained from scratch on the whole memory for ${r.protocol.epochs} epochs (augmentation ${esc(r.protocol.augment)}) and tested on the classes seen so far. ${runs > 1 ? `Mean &plusmn; std over ${runs} runs, each with its own class order.` : 'One run (one class order): no spread is shown.'}</p>
<div class="chart"><canvas id="stages" aria-label="accuracy per stage"></canvas></div>
<table><tr><th>memory</th>${Array.from({ length: r.stages }, (_, s) => `<th>stage ${s + 1}</th>`).join('')}</tr>
${rows}</table>
<script type="application/json" id="continual-data">${scriptJson(r)}</script>
<script>${SCRIPT}</script>
</body></html>
`;
}
