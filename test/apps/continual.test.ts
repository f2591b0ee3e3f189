// distillery continual: the stage plan, the class subsets a stage sees, the seen-class test split, a
// tiny two-stage run with a random and a distilled memory, and clear errors on bad arguments.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { classSubset } from '../../src/data/dataset.js';
import { loadDataset } from '../../src/data/registry.js';
import { ContinualError, continualLearning, seenTest, stagePlan } from '../../src/apps/continual.js';
import { renderContinualReport } from '../../src/report/continual.js';
import { writeFileAtomic } from '../../src/engine/files.js';
import { openReport, pointsOffScale, withPage } from '../browser.js';
import { tempDir, writeSquaresFile } from '../fixtures.js';

const data = writeSquaresFile({ classes: 4, perClass: 10 });

test('stage plan: every class once, in near-equal seeded stages; more stages than classes refused', () => {
  const plan = stagePlan(10, 5, 3);
  assert.equal(plan.length, 5);
  assert.deepEqual(
    plan.map((s) => s.length),
    [2, 2, 2, 2, 2],
  );
  assert.deepEqual(
    plan.flat().sort((a, b) => a - b),
    [...Array(10).keys()],
  );
  assert.deepEqual(stagePlan(10, 5, 3), plan, 'the same seed, the same order');
  assert.notDeepEqual(stagePlan(10, 5, 4), plan);
  assert.throws(() => stagePlan(4, 5, 0), /--stages must be between 1 and the 4 classes, got 5/);
});

test('class subsets and the seen-class test split hold exactly the chosen classes', () => {
  const ds = loadDataset(data);
  const sub = classSubset(ds, [2, 0]);
  assert.deepEqual(sub.classes, [ds.classes[2], ds.classes[0]]);
  assert.deepEqual([...new Set(sub.train.labels.toNumbers())].sort(), [0, 1]);
  assert.equal(sub.train.images.size(0), ds.classIndices(2).length + ds.classIndices(0).length);
  // Relabelled images are the original class's images.
  assert.deepEqual(
    sub.train.images.select(0, sub.classIndices(0)[0]).toNumbers(),
    ds.train.images.select(0, ds.classIndices(2)[0]).toNumbers(),
  );
  assert.throws(() => classSubset(ds, [4]), /class 4 is not a class of/);
  assert.throws(() => classSubset(ds, [1, 1]), /repeated classes/);
  const t = seenTest(ds, [1, 3]);
  assert.deepEqual([...new Set(t.labels.toNumbers())].sort(), [1, 3]);
  const all = ds.test.labels.toNumbers();
  assert.equal(t.labels.size(0), all.filter((y) => y === 1 || y === 3).length);
});

test('continual: two stages with random, herding and DM memories; distillation sees only its stage', async () => {
  const ds = loadDataset(data);
  const work = join(tempDir('continual'), 'runs');
  const lines: string[] = [];
  const r = await continualLearning(ds, {
    stages: 2,
    ipc: 1,
    memories: ['random', 'herding', 'dm'],
    runs: 1,
    featureEpochs: 1,
    seed: 0,
    epochs: 2,
    // No model: the default ConvNet, as the command line runs it (herding's feature network included).
    preset: null,
    overrides: { iterations: 2, methodConfig: { batchReal: 4 } },
    workDir: work,
    log: (l) => lines.push(l),
  });
  assert.equal(lines.length, 6, 'one line per memory and stage');
  for (const m of ['random', 'herding', 'dm']) {
    assert.equal(r.accuracy[m].length, 2);
    for (const s of r.accuracy[m]) assert.ok(s.mean >= 0 && s.mean <= 1);
  }
  // Stage s's distillation ran on a dataset of exactly stage s's classes.
  r.stageClasses[0].forEach((classes, s) => {
    const run = JSON.parse(readFileSync(join(work, `run0-dm-stage${s}`, 'run.json'), 'utf8')) as {
      dataset: { checksum: string };
    };
    assert.ok(run.dataset.checksum.endsWith(`:classes=${classes.join(',')}`), run.dataset.checksum);
    const meta = JSON.parse(
      readFileSync(join(work, `run0-dm-stage${s}`, 'artifact', 'meta.json'), 'utf8'),
    ) as {
      dataset: { classes: string[] };
    };
    assert.deepEqual(
      meta.dataset.classes,
      classes.map((c) => ds.classes[c]),
    );
  });
  const html = renderContinualReport(r);
  assert.match(html, /stage 2/);
  const page = join(work, 'continual.html');
  writeFileAtomic(page, html);
  await withPage(async (tab, errors) => {
    const charts = await openReport(tab, page);
    assert.deepEqual(errors, []);
    assert.deepEqual(await pointsOffScale(tab), [], 'every point inside its axes');
    assert.deepEqual(
      charts.stages.series.map((s) => [s.label, s.points]),
      [
        ['random', 2],
        ['herding', 2],
        ['dm', 2],
      ],
    );
  });
});

test('continual: bad arguments are clear errors', async () => {
  const ds = loadDataset(data);
  const base = { ipc: 1, runs: 1, seed: 0, epochs: 1, workDir: tempDir('continual-bad') };
  await assert.rejects(
    () => continualLearning(ds, { ...base, stages: 5, memories: ['random'] }),
    /--stages must be between 1 and the 4 classes/,
  );
  await assert.rejects(
    () => continualLearning(ds, { ...base, stages: 2, memories: ['magic'] }),
    /continual --memories: unknown set 'magic': random, herding, a method/,
  );
  await assert.rejects(
    () => continualLearning(ds, { ...base, ipc: 99, stages: 2, memories: ['random'] }),
    (e: unknown) => e instanceof ContinualError && /--ipc must be between 1 and 10/.test(e.message),
  );
});
