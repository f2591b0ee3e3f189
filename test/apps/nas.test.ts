// distillery nas: the DC search space, the validation split, ranking against the ground truth, a tiny
// search end to end (cached ground truth, distillation from the training part only, the report in
// chromium) and clear errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { trainSubset } from '../../src/data/dataset.js';
import { loadDataset } from '../../src/data/registry.js';
import { createNetwork } from '../../src/models/index.js';
import {
  DC_SPACE,
  architectureSearch,
  rankAgainstTruth,
  searchSpace,
  validationSplit,
  type NasOptions,
} from '../../src/apps/nas.js';
import { AppError } from '../../src/apps/sets.js';
import { renderNasReport } from '../../src/report/nas.js';
import { writeFileAtomic } from '../../src/engine/files.js';
import { openReport, pointsOffScale, withPage } from '../browser.js';
import { tempDir, writeSquaresFile } from '../fixtures.js';

const data = writeSquaresFile({ classes: 4, perClass: 12 });

test("the DC paper's space: 720 distinct ConvNets that all build; seeded samples in grid order", () => {
  const all = searchSpace(DC_SPACE);
  assert.equal(all.length, 720);
  assert.equal(new Set(all).size, 720);
  for (const spec of all) createNetwork(spec, [1, 28, 28], 10);
  const net = createNetwork('ConvNetD2W32ASGNMP', [1, 28, 28], 10);
  assert.equal(net.hasBatchNorm, false);
  const s = searchSpace(DC_SPACE, 32, 5);
  assert.equal(s.length, 32);
  assert.deepEqual(searchSpace(DC_SPACE, 32, 5), s, 'the same seed, the same sample');
  assert.notDeepEqual(searchSpace(DC_SPACE, 32, 6), s);
  assert.deepEqual(
    s.map((x) => all.indexOf(x)),
    s.map((x) => all.indexOf(x)).sort((x, y) => x - y),
  );
  assert.throws(() => searchSpace(DC_SPACE, 1), /at least 2/);
  assert.throws(() => searchSpace({ ...DC_SPACE, norms: [] }), /empty/);
});

test('a proxy that ranks like the real data: correlation 1, picks the real best', () => {
  const truth = [0.5, 0.9, 0.7, 0.2, 0.6, 0.8].map((val, i) => ({
    spec: `A${i}`,
    val,
    test: val - 0.01,
    seconds: 10,
  }));
  const same = rankAgainstTruth(
    truth,
    truth.map((a) => a.val / 2),
    [1, 1, 1, 1, 1, 1],
    40,
  );
  assert.equal(same.spearman, 1);
  assert.equal(same.kendall, 1);
  assert.deepEqual(same.topK, { 5: 1 });
  assert.deepEqual(same.selected, { spec: 'A1', realTest: 0.89, realRank: 1 });
  assert.equal(same.totalSeconds, 6);
  const reversed = rankAgainstTruth(
    truth,
    truth.map((a) => -a.val),
    [1, 1, 1, 1, 1, 1],
    40,
  );
  assert.equal(reversed.spearman, -1);
  assert.deepEqual(reversed.selected, { spec: 'A3', realTest: 0.19, realRank: 6 });
});

test('validation split: per class, disjoint from the training part, seeded; bad sizes refused', () => {
  const ds = loadDataset(data);
  const { val, rest } = validationSplit(ds, 3, 0);
  assert.equal(val.length, 12);
  assert.equal(rest.length, ds.train.images.size(0) - 12);
  assert.equal(new Set([...val, ...rest]).size, ds.train.images.size(0));
  const y = ds.train.labels.toNumbers();
  for (let c = 0; c < 4; c++) assert.equal(val.filter((i) => y[i] === c).length, 3);
  assert.deepEqual(validationSplit(ds, 3, 0).val, val);
  assert.throws(() => validationSplit(ds, 12, 0), /--val-per-class must be between 1 and 11/);
  const part = trainSubset(ds, rest);
  assert.equal(part.train.images.size(0), rest.length);
  assert.match(part.info.checksum, /:train=[0-9a-f]{16}$/);
  assert.equal(part.test.images.size(0), ds.test.images.size(0));
});

function tinyOptions(work: string, lines: string[]): NasOptions {
  return {
    space: searchSpace({
      depths: [1, 2],
      widths: [8],
      activations: ['AR'],
      norms: ['NN', 'IN'],
      pools: ['AP'],
    }),
    proxies: ['random', 'early-stopping', 'dm'],
    ipc: 1,
    proxyEpochs: 2,
    realEpochs: 1,
    valPerClass: 2,
    seed: 0,
    preset: 'quick',
    overrides: { iterations: 2 },
    workDir: work,
    log: (l) => lines.push(l),
  };
}

test('nas: a tiny search end to end; the ground truth is cached; DM distils from the training part only', async () => {
  process.env.DISTILLERY_CACHE = tempDir('nas-cache');
  const ds = loadDataset(data);
  const work = tempDir('nas');
  const lines: string[] = [];
  const r = await architectureSearch(ds, tinyOptions(work, lines));
  assert.equal(r.architectures.length, 4);
  assert.deepEqual(Object.keys(r.proxies), ['random', 'early-stopping', 'dm']);
  for (const p of Object.values(r.proxies)) {
    assert.equal(p.val.length, 4);
    assert.ok(p.spearman >= -1 && p.spearman <= 1);
    assert.ok(r.architectures.some((a) => a.spec === p.selected.spec));
    assert.ok(p.selected.realRank >= 1 && p.selected.realRank <= 4);
    assert.ok(p.val.every((v) => v >= 0 && v <= 1));
  }
  assert.equal(r.proxies.random.images, 4);
  assert.equal(r.proxies.dm.images, 4);
  assert.equal(
    lines.filter((l) => l.startsWith('real ')).length,
    4,
    'each architecture trained on real data once',
  );
  const run = JSON.parse(readFileSync(join(work, 'dm', 'run.json'), 'utf8')) as {
    dataset: { checksum: string };
  };
  const { rest } = validationSplit(ds, 2, 0);
  assert.equal(
    run.dataset.checksum,
    trainSubset(ds, rest).info.checksum,
    'DM saw the training part, not the validation images',
  );
  // Again: the ground truth comes from the cache, the proxies are recomputed identically.
  const again: string[] = [];
  const r2 = await architectureSearch(ds, { ...tinyOptions(tempDir('nas2'), again), proxies: ['random'] });
  assert.equal(again.filter((l) => l.startsWith('real ')).length, 0, 'no real training the second time');
  assert.deepEqual(r2.architectures, r.architectures);
  assert.deepEqual(r2.proxies.random.val, r.proxies.random.val);
  // The page: a scatter series per proxy with a point per architecture, the correlation bars.
  const page = join(work, 'nas.html');
  writeFileAtomic(page, renderNasReport(r));
  await withPage(async (tab, errors) => {
    const charts = await openReport(tab, page);
    assert.deepEqual(errors, []);
    assert.deepEqual(await pointsOffScale(tab), [], 'every point inside its axes');
    assert.deepEqual(
      charts.ranking.series.map((s) => s.points),
      [4, 4, 4],
    );
    assert.deepEqual(
      charts.correlation.series.map((s) => s.points),
      [3, 3],
    );
  });
});

test('nas: unknown proxies, bad architectures and an artifact of another dataset are clear errors', async () => {
  const ds = loadDataset(data);
  const work = tempDir('nas-bad');
  const base = tinyOptions(work, []);
  await assert.rejects(
    () => architectureSearch(ds, { ...base, proxies: ['magic'] }),
    (e: unknown) => e instanceof AppError && /unknown set 'magic'/.test(e.message),
  );
  await assert.rejects(
    () => architectureSearch(ds, { ...base, space: ['ConvNetD9', 'ConvNet'] }),
    /search space: .*reduces the input to nothing/,
  );
  await assert.rejects(
    () => architectureSearch(ds, { ...base, space: ['ConvNet'] }),
    /at least 2 architectures/,
  );
  // An artifact distilled from another dataset.
  const other = loadDataset(writeSquaresFile({ classes: 4, perClass: 12 }));
  const first = await architectureSearch(other, { ...base, proxies: ['dm'], workDir: join(work, 'other') });
  assert.ok(first.proxies.dm);
  await assert.rejects(
    () => architectureSearch(ds, { ...base, proxies: [join(work, 'other', 'dm', 'artifact')] }),
    /was distilled from/,
  );
});
