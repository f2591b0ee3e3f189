// distillery privacy: the member split and LiRA's shadow split, the confidence score, the attacks'
// statistics, an attack that must beat chance on a deliberately overfitted target, a tiny run with a
// random subset and a distilled set (distillation sees the members only), the report in chromium,
// and clear errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as E from '../../src/engine/index.js';
import { Dataset, trainSubset } from '../../src/data/dataset.js';
import { Preprocessing } from '../../src/data/preprocess.js';
import { loadDataset } from '../../src/data/registry.js';
import {
  thinRoc,
  attackResult,
  confidences,
  liraOffline,
  membershipPrivacy,
  privacySplit,
  shadowSplits,
  type PrivacyOptions,
} from '../../src/apps/privacy.js';
import { AppError } from '../../src/apps/sets.js';
import { rocCurve, tprBelow } from '../../src/util/stats.js';
import { renderPrivacyReport } from '../../src/report/privacy.js';
import { writeFileAtomic } from '../../src/engine/files.js';
import { openReport, pointsOffScale, withPage } from '../browser.js';
import { tempDir, writeSquaresFile } from '../fixtures.js';

const data = writeSquaresFile({ classes: 4, perClass: 12 });

test('member split: half of each class of a per-class pool; LiRA shadow split: each example OUT of ceil(K/2)', () => {
  const ds = loadDataset(data);
  const { pool, member } = privacySplit(ds, 10, 0);
  assert.equal(pool.length, 40);
  assert.equal(new Set(pool).size, 40);
  const y = ds.gather(pool).labels.toNumbers();
  for (let c = 0; c < 4; c++) assert.equal(member.filter((m, j) => m && y[j] === c).length, 5);
  assert.deepEqual(privacySplit(ds, 10, 0), { pool, member });
  assert.throws(() => privacySplit(ds, 13, 0), /--pool-per-class must be between 2 and 12/);
  for (const k of [2, 3, 4]) {
    const s = shadowSplits(y, k, 1);
    for (let j = 0; j < 40; j++) {
      const ins = s.filter((row) => row[j]).length;
      assert.ok(ins >= Math.floor(k / 2) && k - ins >= Math.floor(k / 2), `example ${j}: IN ${ins} of ${k}`);
      if (k % 2 === 0) assert.equal(ins, k / 2, 'paired shadows: IN for exactly half');
    }
    // Every shadow is class-balanced: 5 of each class's 10 pool images.
    for (const row of s)
      for (let c = 0; c < 4; c++) assert.equal(row.filter((m, j) => m && y[j] === c).length, 5);
  }
});

test('phi = log p_y / (1 - p_y) and the cross-entropy, stably', () => {
  const logits = E.tensor(Float32Array.from([2, 0, -1, 0.5, 0.5, 3, 40, -40, 0]), { shape: [3, 3] });
  const labels = E.tensor(Int32Array.from([0, 2, 1])).long();
  const { phi, loss } = confidences(logits, labels);
  const rows = [
    [2, 0, -1],
    [0.5, 0.5, 3],
    [40, -40, 0],
  ];
  [0, 2, 1].forEach((yi, i) => {
    const z = rows[i].map(Math.exp);
    const p = z[yi] / z.reduce((s, v) => s + v, 0);
    assert.ok(Math.abs(loss[i] + Math.log(p)) < 1e-5);
    if (i < 2) assert.ok(Math.abs(phi[i] - Math.log(p / (1 - p))) < 1e-5);
  });
  // p_y ~ e^-80: 1 - p_y rounds to 1, yet phi keeps its value, -80 - log(1 + e^-40) ~ -80.
  assert.ok(Math.abs(phi[2] + 80) < 1e-4);
});

test('offline LiRA: the median of the OUT shadows over one global std; TPR below an FPR', () => {
  const target = [3, 0];
  const shadowPhi = [
    [1, 0],
    [2, 1],
    [9, 2],
  ];
  const shadowIn = [
    [false, false],
    [false, true],
    [true, false],
  ];
  // OUT values: example 0 -> [1, 2] (median 1.5), example 1 -> [0, 2] (median 1); all OUT: [1, 2, 0, 2].
  const std = Math.sqrt(((1 - 1.25) ** 2 + (2 - 1.25) ** 2 + 1.25 ** 2 + 0.75 ** 2) / 4);
  const z = liraOffline(target, shadowPhi, shadowIn);
  assert.ok(Math.abs(z[0] - 1.5 / std) < 1e-12);
  assert.ok(Math.abs(z[1] + 1 / std) < 1e-12);
  assert.throws(() => liraOffline([0], [[0]], [[true]]), /in every shadow/);
  const r = attackResult([0.9, 0.8, 0.1, 0.2], [true, true, false, false]);
  assert.equal(r.auc, 1);
  assert.equal(r.tprAt01, 1, 'a perfect attack: all members before any non-member');
  assert.equal(tprBelow(r.roc, 0), 0, 'nothing is strictly below FPR 0');
  // A long curve is stored thinned: on its upper envelope (the top of every vertical run), ends kept.
  const pos = Array.from({ length: 3000 }, (_, i) => Math.round(Math.sin(i) * 500) / 10 + 3);
  const neg = Array.from({ length: 3000 }, (_, i) => Math.round(Math.cos(i * 1.7) * 500) / 10);
  const full = rocCurve(pos, neg);
  const thin = thinRoc(full);
  assert.ok(full.length > 200 && thin.length <= 220, `${full.length} -> ${thin.length} points`);
  assert.deepEqual(thin[0], { fpr: 0, tpr: 0 });
  assert.deepEqual(thin[thin.length - 1], { fpr: 1, tpr: 1 });
  for (const p of thin.slice(1))
    assert.equal(
      p.tpr,
      Math.max(...full.filter((q) => q.fpr === p.fpr).map((q) => q.tpr)),
      `at FPR ${p.fpr}`,
    );
});

/** Noise images with random labels: nothing to generalise, everything to memorise. */
function noiseDataset(perClass: number): Dataset {
  const n = 4 * perClass;
  const split = (seed: number) =>
    E.tidy(() => ({
      images: E.randn([n, 1, 8, 8], { generator: new E.Generator(seed) }),
      labels: E.tensor(Int32Array.from({ length: n }, (_, i) => i % 4)).long(),
    }));
  const info = { name: 'noise', classes: ['a', 'b', 'c', 'd'], source: 'test', checksum: 'noise' };
  return new Dataset(info, split(1), split(2), new Preprocessing([0], [1]));
}

test('an overfitted target trained on its members: both attacks beat chance clearly', async () => {
  const ds = noiseDataset(20);
  const r = await membershipPrivacy(ds, {
    targets: ['real'],
    poolPerClass: 20,
    ipc: 1,
    shadows: 2,
    epochs: 60,
    augment: false,
    model: 'MLP',
    seed: 0,
    workDir: tempDir('privacy-overfit'),
  });
  const { loss, lira } = r.targets.real.attacks;
  assert.ok(loss.auc > 0.8, `loss attack AUC ${loss.auc}`);
  assert.ok(lira.auc > 0.8, `LiRA AUC ${lira.auc}`);
  assert.equal(r.members, 40);
  assert.equal(r.nonMembers, 40);
});

function tinyOptions(work: string, lines: string[] = []): PrivacyOptions {
  return {
    targets: ['random', 'dm'],
    poolPerClass: 8,
    ipc: 1,
    shadows: 2,
    epochs: 2,
    model: 'ConvNetW8',
    seed: 0,
    preset: 'quick',
    overrides: { iterations: 2 },
    workDir: work,
    log: (l) => lines.push(l),
  };
}

test('privacy: random and DM targets; DM distils from the members only; the report loads', async () => {
  const ds = loadDataset(data);
  const work = tempDir('privacy');
  const r = await membershipPrivacy(ds, tinyOptions(work));
  assert.deepEqual(Object.keys(r.targets), ['random', 'dm']);
  for (const t of Object.values(r.targets)) {
    assert.equal(t.trainImages, 4);
    for (const a of [t.attacks.loss, t.attacks.lira]) {
      assert.ok(a.auc >= 0 && a.auc <= 1);
      assert.ok(a.tprAt01 <= a.tprAt1);
    }
  }
  const { pool, member } = privacySplit(ds, 8, 0);
  const run = JSON.parse(readFileSync(join(work, 'dm', 'target', 'run.json'), 'utf8')) as {
    dataset: { checksum: string };
  };
  assert.equal(
    run.dataset.checksum,
    trainSubset(
      ds,
      pool.filter((_, j) => member[j]),
    ).info.checksum,
  );
  const page = join(work, 'privacy.html');
  writeFileAtomic(page, renderPrivacyReport(r));
  await withPage(async (tab, errors) => {
    const charts = await openReport(tab, page);
    assert.deepEqual(errors, []);
    assert.deepEqual(await pointsOffScale(tab), [], 'every point inside its axes');
    assert.equal(charts['roc-lira'].series.length, 3, 'two targets and the chance line');
    assert.equal(charts['roc-loss'].series.length, 3);
    assert.deepEqual(
      charts.tradeoff.series.map((s) => s.points),
      [1, 1],
    );
  });
});

test('privacy: artifacts, unknown targets and too few shadows are clear errors', async () => {
  const ds = loadDataset(data);
  const work = tempDir('privacy-bad');
  await assert.rejects(
    () => membershipPrivacy(ds, { ...tinyOptions(work), targets: ['magic'] }),
    (e: unknown) => e instanceof AppError && /unknown set 'magic'/.test(e.message),
  );
  await assert.rejects(
    () => membershipPrivacy(ds, { ...tinyOptions(work), shadows: 1 }),
    /--shadows must be at least 2/,
  );
  mkdirSync(join(work, 'art'));
  writeFileAtomic(join(work, 'art', 'meta.json'), '{}');
  await assert.rejects(
    () => membershipPrivacy(ds, { ...tinyOptions(work), targets: [join(work, 'art')] }),
    /is an artifact, but this application must make its sets from its own split/,
  );
});
