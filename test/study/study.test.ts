// `distillery study`: the study file's validation, DD-Ranking's scores on fractions, a tiny grid run
// end to end (results, summary, resumption without recomputation, recomputation of an edited entry
// only), and the report dashboard loaded in headless chromium (charts, sorting, a screenshot).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { honestScores, normalizeScore } from '../../src/study/scores.js';
import { loadStudyFile, parseStudy, StudyError, type StudySpec } from '../../src/study/spec.js';
import { cellRunDir, readResults, runStudy } from '../../src/study/runner.js';
import { renderReport } from '../../src/report/html.js';
import { renderStudyReport } from '../../src/report/study.js';
import { writeFileAtomic } from '../../src/engine/files.js';
import { pointsOffScale, withPage } from '../browser.js';
import { tempDir, writeSquaresFile } from '../fixtures.js';

test('study file: bad input is a clear error naming the problem', () => {
  const base = { datasets: ['mnist'], ipcs: [1] };
  assert.throws(() => parseStudy({ ...base, methods: [{ method: 'magic' }] }), /unknown method 'magic'/);
  assert.throws(
    () => parseStudy({ ...base, methods: [{ method: 'dm' }], evaluation: { models: ['ConvNetQ'] } }),
    StudyError,
  );
  assert.throws(
    () => parseStudy({ ...base, methods: [{ method: 'dm' }, { method: 'dm' }] }),
    /two method entries are named 'dm'; give one a distinct 'label'/,
  );
  assert.throws(() => parseStudy({ ...base, ipc: [1] }), /Unrecognized key/);
  assert.throws(() => parseStudy({ datasets: ['mnist'], ipcs: [] }), /ipcs/);
  assert.throws(() => parseStudy({ ...base, baselines: [] }), /nothing to run/);
  const dir = tempDir('study-file');
  writeFileSync(join(dir, 'bad.yaml'), 'datasets: [mnist\n');
  assert.throws(() => loadStudyFile(join(dir, 'bad.yaml')), /not valid YAML/);
  assert.throws(() => loadStudyFile(join(dir, 'none.yaml')), /cannot read study file/);
  // The bundled studies are valid.
  for (const name of ['quick', 'survey'])
    assert.ok(loadStudyFile(join('studies', `${name}.yaml`)).methods.length);
});

test("DD-Ranking's scores: fractions, the normalisation's end points, and percentages refused", () => {
  assert.ok(Math.abs(normalizeScore(-1)) < 1e-12);
  assert.ok(Math.abs(normalizeScore(1) - 1) < 1e-12);
  const s = honestScores({
    synthetic: 0.9,
    syntheticHard: 0.8,
    syntheticNoAug: 0.85,
    random: 0.6,
    randomNoAug: 0.5,
    full: 0.99,
  });
  assert.ok(Math.abs(s.hlr - 0.19) < 1e-12);
  assert.ok(Math.abs(s.ior - 0.3) < 1e-12);
  assert.ok(Math.abs(s.lrs - normalizeScore(0.5 * 0.3 - 0.5 * 0.19)) < 1e-12);
  assert.ok(Math.abs(s.ars - normalizeScore(0.5 * 0.3 + 0.5 * 0.35)) < 1e-12);
  for (const v of Object.values(s).slice(2)) assert.ok(v >= 0 && v <= 1);
  // A protocol without augmentation: ARS's augmented side is measured apart (syntheticAug, randomAug).
  const apart = honestScores({
    synthetic: 0.9,
    syntheticHard: 0.8,
    syntheticAug: 0.95,
    syntheticNoAug: 0.9,
    random: 0.5,
    randomAug: 0.6,
    randomNoAug: 0.5,
    full: 0.99,
  });
  assert.ok(Math.abs(apart.ars - normalizeScore(0.5 * 0.35 + 0.5 * 0.4)) < 1e-12);
  assert.throws(
    () =>
      honestScores({
        synthetic: 90,
        syntheticHard: 80,
        syntheticNoAug: 85,
        random: 60,
        randomNoAug: 50,
        full: 99,
      }),
    /accuracy fraction in \[0, 1\], got 90 \(a percentage\?\)/,
  );
});

const data = writeSquaresFile({ classes: 3, perClass: 12 });
function tinyStudy(dmIterations = 2): StudySpec {
  const tiny = { model: 'ConvNetW8', checkpointEvery: 1 };
  return parseStudy({
    name: 'tiny',
    datasets: [data],
    ipcs: [1, 2],
    seeds: [0],
    methods: [
      {
        method: 'dm',
        preset: null,
        set: { ...tiny, iterations: dmIterations, methodConfig: { batchReal: 4 } },
      },
      { method: 'm3d', preset: null, set: { ...tiny, iterations: 2, methodConfig: { batchReal: 4 } } },
    ],
    evaluation: { models: ['ConvNetW8', 'MLP'], runs: 2, epochs: 2, fullEpochs: 1 },
    baselines: ['random', 'herding', 'kcenter', 'forgetting', 'full'],
    scores: true,
  });
}

const studyDir = join(tempDir('study'), 'tiny');
process.env.DISTILLERY_CACHE = tempDir('study-cache');

test('study: a tiny grid runs every cell, records results and a summary, and resumes without recomputing', async () => {
  const lines: string[] = [];
  const results = await runStudy(tinyStudy(), studyDir, { log: (l) => lines.push(l) });
  // Per IPC: four subset baselines; full once; dm and m3d: 2 x 4 + 1 + 2 x 2 = 13 cells.
  assert.equal(results.length, 13);
  const keys = results.map((r) => r.key.replace(/^[^/]+/, 'D')).sort();
  assert.deepEqual(keys, [
    'D/full',
    'D/ipc1/dm/seed0',
    'D/ipc1/forgetting',
    'D/ipc1/herding',
    'D/ipc1/kcenter',
    'D/ipc1/m3d/seed0',
    'D/ipc1/random',
    'D/ipc2/dm/seed0',
    'D/ipc2/forgetting',
    'D/ipc2/herding',
    'D/ipc2/kcenter',
    'D/ipc2/m3d/seed0',
    'D/ipc2/random',
  ]);
  for (const r of results) {
    assert.ok(r.accuracy.ConvNetW8.runs.length >= 1 && r.accuracy.MLP, `${r.key}: both models evaluated`);
    for (const s of Object.values(r.accuracy)) for (const a of s.runs) assert.ok(a >= 0 && a <= 1);
    if (r.kind === 'method') {
      assert.equal(r.iterations, 2);
      assert.ok(
        r.secondsPerIteration! > 0 && r.peakMiB! >= 0 && r.storage!.bytes > 0,
        `${r.key}: cost recorded`,
      );
      assert.ok(r.scores && r.scores.lrs >= 0 && r.scores.lrs <= 1 && r.scores.ars >= 0 && r.scores.ars <= 1);
    }
  }
  const summary = JSON.parse(readFileSync(join(studyDir, 'summary.json'), 'utf8'));
  assert.equal(summary.rows.length, 13);
  assert.match(readFileSync(join(studyDir, 'summary.md'), 'utf8'), /Nothing is selected on the test split/);
  // Again: every cell is finished, nothing recomputed, results.jsonl untouched.
  const before = statSync(join(studyDir, 'results.jsonl')).mtimeMs;
  const again: string[] = [];
  await runStudy(tinyStudy(), studyDir, { log: (l) => again.push(l) });
  assert.equal(again.filter((l) => l.includes('finished earlier')).length, 13);
  assert.equal(statSync(join(studyDir, 'results.jsonl')).mtimeMs, before);
  // Editing dm's settings recomputes dm's two cells and nothing else.
  const edited: string[] = [];
  await runStudy(tinyStudy(3), studyDir, { log: (l) => edited.push(l) });
  assert.equal(edited.filter((l) => l.includes('finished earlier')).length, 11);
  assert.deepEqual(
    readResults(studyDir)
      .filter((r) => r.label === 'dm')
      .map((r) => r.iterations),
    [3, 3],
  );
  // A study without m3d: its cells stay in results.jsonl but leave the summary.
  const withoutM3d = { ...tinyStudy(3), methods: tinyStudy(3).methods.filter((m) => m.method !== 'm3d') };
  await runStudy(withoutM3d, studyDir);
  const rows = (
    JSON.parse(readFileSync(join(studyDir, 'summary.json'), 'utf8')) as { rows: { label: string }[] }
  ).rows;
  assert.equal(rows.length, 11);
  assert.ok(!rows.some((r) => r.label === 'm3d'));
  assert.equal(readResults(studyDir).filter((r) => r.label === 'm3d').length, 2, 'kept in results.jsonl');
  await runStudy(tinyStudy(3), studyDir); // back, for the report test: nothing recomputed
});

test('study report: loads in headless chromium without errors; charts, heatmap and sorting work', async () => {
  const html = renderStudyReport(studyDir);
  const page = join(studyDir, 'report.html');
  writeFileAtomic(page, html);
  assert.ok(
    !/https?:\/\/[^"']*\.(js|css)/.test(html.replace(/<script>[\s\S]*?<\/script>/g, '')),
    'no remote assets',
  );
  await withPage(async (tab, errors) => {
    await tab.goto(`file://${page}`, { waitUntil: 'load' });
    assert.deepEqual(errors, [], 'no console errors, no network');
    assert.deepEqual(await pointsOffScale(tab), [], 'every point inside its axes');
    const charts = (await tab.evaluate('window.distilleryCharts')) as Record<
      string,
      { type: string; series: { label: string; points: number }[] }
    >;
    // Accuracy vs IPC: dm and m3d (2 IPCs each), the four subset baselines (2 IPCs each) and full data
    // (a horizontal line: 2 points).
    const ipc = charts['acc-ipc'];
    assert.equal(ipc.series.length, 7);
    assert.deepEqual(
      ipc.series.map((s) => s.points),
      [2, 2, 2, 2, 2, 2, 2],
    );
    assert.equal(charts['acc-time'].series.length, 2);
    assert.equal(charts['acc-memory'].series.length, 2);
    assert.equal(charts.scores.series.length, 2, 'LRS and ARS');
    assert.equal(
      Object.keys(charts).filter((k) => k.startsWith('loss-')).length,
      4,
      'a loss curve per method and IPC',
    );
    // The heatmap: a row per summary row, a column per evaluation model.
    const cells = (await tab.evaluate(
      "document.querySelectorAll('#heatmap tr').length + ':' + document.querySelectorAll('#heatmap tr:nth-child(2) td').length",
    )) as string;
    assert.equal(cells, '14:2');
    // Sorting by accuracy: ascending, then descending.
    const column = async () =>
      (await tab.evaluate(
        "Array.from(document.querySelectorAll('#leaderboard tbody tr')).map(r => r.cells[3].dataset.v)",
      )) as string[];
    await tab.click('#leaderboard th[data-col="3"]');
    const up = (await column()).map(Number);
    assert.deepEqual(
      up,
      [...up].sort((a, b) => a - b),
    );
    await tab.click('#leaderboard th[data-col="3"]');
    const down = (await column()).map(Number);
    assert.deepEqual(down, [...up].reverse());
    const out = join('test-output');
    mkdirSync(out, { recursive: true });
    await tab.screenshot({ path: join(out, 'study-report.png'), fullPage: true });
    // A run directory's report: the same library, its loss chart drawn without errors.
    const dm = readResults(studyDir).find((r) => r.label === 'dm' && r.ipc === 2)!;
    const runPage = join(studyDir, 'run-report.html');
    writeFileAtomic(runPage, renderReport(cellRunDir(studyDir, dm.key, dm.hash)));
    await tab.goto(`file://${runPage}`, { waitUntil: 'load' });
    assert.deepEqual(errors, [], 'no console errors in the run report');
    const run = (await tab.evaluate('window.distilleryCharts')) as Record<
      string,
      { series: { points: number }[] }
    >;
    assert.deepEqual(
      run.loss.series.map((x) => x.points),
      [3],
      'one loss point per iteration',
    );
    await tab.screenshot({ path: join(out, 'run-report.png'), fullPage: true });
  });
});
