// The architecture-search result as a self-contained page: per proxy, each architecture's validation
// accuracy after proxy training against after real training (a ranking that agrees climbs to the
// right), the rank correlations as bars, and the table of what each proxy picks. Chart.js inlined.
import type { NasResult } from '../apps/nas.js';
import { chartLibrary, esc, scriptJson } from './charts.js';

const SCRIPT = `
(function () {
  var d = JSON.parse(document.getElementById('nas-data').textContent);
  var palette = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b'];
  var names = Object.keys(d.proxies);
  var sets = names.map(function (name, i) {
    return { label: name, backgroundColor: palette[i % palette.length], borderColor: palette[i % palette.length],
      data: d.proxies[name].val.map(function (v, k) { return { x: 100 * d.architectures[k].val, y: 100 * v, spec: d.architectures[k].spec }; }) };
  });
  new Chart(document.getElementById('ranking'), { type: 'scatter', data: { datasets: sets },
    options: { animation: false, responsive: true, maintainAspectRatio: false,
      plugins: { title: { display: true, text: 'Validation accuracy: proxy training against real training, one point per architecture' }, legend: { position: 'bottom' },
        tooltip: { callbacks: { label: function (ctx) { return ctx.dataset.label + ' ' + ctx.raw.spec + ': real ' + ctx.raw.x.toFixed(2) + ', proxy ' + ctx.raw.y.toFixed(2); } } } },
      scales: { x: { title: { display: true, text: 'after real training (%)' } }, y: { title: { display: true, text: 'after proxy training (%)' } } } } });
  var corr = { labels: names, datasets: [
    { label: "Spearman's rho", backgroundColor: '#1f77b4', data: names.map(function (n) { return d.proxies[n].spearman; }) },
    { label: "Kendall's tau", backgroundColor: '#ff7f0e', data: names.map(function (n) { return d.proxies[n].kendall; }) } ] };
  new Chart(document.getElementById('correlation'), { type: 'bar', data: corr,
    options: { animation: false, responsive: true, maintainAspectRatio: false,
      plugins: { title: { display: true, text: 'Rank correlation with the real ranking' }, legend: { position: 'bottom' } },
      scales: { x: { title: { display: true, text: 'proxy' } }, y: { min: -1, max: 1, title: { display: true, text: 'correlation' } } } } });
  window.distilleryCharts = {
    ranking: { type: 'scatter', series: sets.map(function (s) { return { label: s.label, points: s.data.length }; }) },
    correlation: { type: 'bar', series: corr.datasets.map(function (s) { return { label: s.label, points: s.data.length }; }) } };
})();
`;

const pct = (x: number) => (100 * x).toFixed(2);

export function renderNasReport(r: NasResult): string {
  const rows = Object.entries(r.proxies)
    .map(
      ([name, p]) =>
        `<tr><th>${esc(name)}</th><td>${p.images}</td><td>${p.spearman.toFixed(3)}</td><td>${p.kendall.toFixed(3)}</td><td>${Object.entries(
          p.topK,
        )
          .map(([k, v]) => `top ${k}: ${v.toFixed(2)}`)
          .join(
            ', ',
          )}</td><td>${esc(p.selected.spec)}</td><td>${pct(p.selected.realTest)}</td><td>${p.selected.realRank}</td><td>${(p.totalSeconds / 60).toFixed(1)}</td></tr>`,
    )
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Architecture search on ${esc(r.dataset)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;color:#222}table{border-collapse:collapse}th,td{border:1px solid #ddd;padding:4px 8px}.chart{position:relative;height:360px;margin:1em 0}</style>
<script>${chartLibrary()}</script></head><body>
<h1>Small sets as architecture-search proxies on ${esc(r.dataset)}: ${r.architectures.length} architectures, ${r.ipc} images per class</h1>
<p>Each architecture trains ${r.proxyProtocol.epochs + 1} epochs on each proxy (augmentation ${esc(r.proxyProtocol.augment)}) and ${r.realProtocol.epochs + 1} on ${r.realProtocol.perClass ? `${r.realProtocol.perClass} real images per class` : 'the real training part'} (the ground truth); both are scored on ${r.validationPerClass} training images per class held out for validation. The proxy's pick is reported with its test accuracy after real training. Real best: <b>${esc(r.best.spec)}</b>, test ${pct(r.best.realTest)}%; real training took ${(r.realSeconds / 60).toFixed(1)} min in all.</p>
<div class="chart"><canvas id="ranking" aria-label="proxy against real validation accuracy"></canvas></div>
<div class="chart"><canvas id="correlation" aria-label="rank correlations"></canvas></div>
<table><tr><th>proxy</th><th>images</th><th>Spearman</th><th>Kendall</th><th>Spearman, real top k</th><th>picks</th><th>its real test (%)</th><th>real rank</th><th>minutes</th></tr>
${rows}</table>
<script type="application/json" id="nas-data">${scriptJson(r)}</script>
<script>${SCRIPT}</script>
</body></html>
`;
}
