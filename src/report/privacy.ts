// The membership-inference result as a self-contained page: each attack's ROC curve per target on
// log-log axes (where low-FPR leakage shows), and attack AUC against the target's test accuracy (a
// target that leaks less but learns nothing sits at the bottom left). Chart.js inlined.
import type { PrivacyResult } from '../apps/privacy.js';
import { chartLibrary, esc, scriptJson } from './charts.js';

const SCRIPT = `
(function () {
  var d = JSON.parse(document.getElementById('privacy-data').textContent);
  var palette = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b'];
  var names = Object.keys(d.targets);
  var charts = {};
  // Log axes from 0.1 % FPR (or the smallest nonzero rate the pool allows) to 1.
  var lo = Math.min(1e-3, 1 / d.nonMembers, 1 / d.members);
  ['lira', 'loss'].forEach(function (attack) {
    var sets = names.map(function (name, i) {
      return { label: name, borderColor: palette[i % palette.length], backgroundColor: palette[i % palette.length], showLine: true, pointRadius: 0,
        data: d.targets[name].attacks[attack].roc.filter(function (p) { return p.fpr > 0 && p.tpr > 0; }).map(function (p) { return { x: p.fpr, y: p.tpr }; }) };
    });
    sets.push({ label: 'chance', borderColor: '#999', borderDash: [4, 4], showLine: true, pointRadius: 0, data: [{ x: lo, y: lo }, { x: 1, y: 1 }] });
    new Chart(document.getElementById('roc-' + attack), { type: 'scatter', data: { datasets: sets },
      options: { animation: false, responsive: true, maintainAspectRatio: false,
        plugins: { title: { display: true, text: (attack === 'lira' ? 'Offline LiRA' : 'Loss threshold') + ': ROC' }, legend: { position: 'bottom' } },
        scales: { x: { type: 'logarithmic', min: lo, max: 1, title: { display: true, text: 'false-positive rate' } },
          y: { type: 'logarithmic', min: lo, max: 1, title: { display: true, text: 'true-positive rate' } } } } });
    charts['roc-' + attack] = { type: 'scatter', series: sets.map(function (s) { return { label: s.label, points: s.data.length }; }) };
  });
  var trade = names.map(function (name, i) {
    var t = d.targets[name];
    return { label: name, backgroundColor: palette[i % palette.length], pointRadius: 6,
      data: [{ x: 100 * t.testAccuracy, y: t.attacks.lira.auc }] };
  });
  new Chart(document.getElementById('tradeoff'), { type: 'scatter', data: { datasets: trade },
    options: { animation: false, responsive: true, maintainAspectRatio: false,
      plugins: { title: { display: true, text: 'Utility against leakage' }, legend: { position: 'bottom' } },
      scales: { x: { title: { display: true, text: 'target test accuracy (%)' } }, y: { title: { display: true, text: 'LiRA AUC (0.5 = chance)' } } } } });
  charts.tradeoff = { type: 'scatter', series: trade.map(function (s) { return { label: s.label, points: s.data.length }; }) };
  window.distilleryCharts = charts;
})();
`;

const pct = (x: number) => (100 * x).toFixed(2);

export function renderPrivacyReport(r: PrivacyResult): string {
  const rows = Object.entries(r.targets)
    .map(([name, t]) => {
      const { loss, lira } = t.attacks;
      return `<tr><th>${esc(name)}</th><td>${t.trainImages}</td><td>${pct(t.testAccuracy)}</td><td>${loss.auc.toFixed(3)}</td><td>${pct(loss.tprAt1)}</td><td>${pct(loss.tprAt01)}</td><td>${lira.auc.toFixed(3)}</td><td>${pct(lira.tprAt1)}</td><td>${pct(lira.tprAt01)}</td></tr>`;
    })
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Membership inference on ${esc(r.dataset)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;color:#222}table{border-collapse:collapse}th,td{border:1px solid #ddd;padding:4px 8px}.chart{position:relative;height:360px;margin:1em 0}</style>
<script>${chartLibrary()}</script></head><body>
<h1>Membership inference on ${esc(r.dataset)}</h1>
<p>A pool of ${r.poolPerClass} training images per class: ${r.members} members (what each target pipeline sees) and ${r.nonMembers} non-members. Every network is a ${esc(r.model)} trained ${r.protocol.epochs + 1} epochs (augmentation ${esc(r.protocol.augment)}); sets have ${r.ipc} images per class. Offline LiRA uses ${r.shadows} shadow pipelines per target on random halves of the pool. TPR at an FPR counts only ROC points strictly below it; with ${r.nonMembers} non-members the smallest nonzero FPR is ${(100 / r.nonMembers).toFixed(2)}%.</p>
<div class="chart"><canvas id="roc-lira" aria-label="LiRA ROC"></canvas></div>
<div class="chart"><canvas id="roc-loss" aria-label="loss attack ROC"></canvas></div>
<div class="chart"><canvas id="tradeoff" aria-label="test accuracy against attack AUC"></canvas></div>
<table><tr><th>target</th><th>images</th><th>test acc (%)</th><th>loss AUC</th><th>loss TPR@1% (%)</th><th>loss TPR@0.1% (%)</th><th>LiRA AUC</th><th>LiRA TPR@1% (%)</th><th>LiRA TPR@0.1% (%)</th></tr>
${rows}</table>
<script type="application/json" id="privacy-data">${scriptJson(r)}</script>
<script>${SCRIPT}</script>
</body></html>
`;
}
