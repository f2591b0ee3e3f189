// Rank correlations and ROC statistics against scipy (values computed once with scipy 1.17 and
// written here: spearmanr, kendalltau (tau-b), mannwhitneyu / (n_pos n_neg)).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  averageRanks,
  kendallTau,
  median,
  rocAuc,
  rocCurve,
  spearman,
  tprAtFpr,
} from '../../src/util/stats.js';

const a = [0.3, 0.1, 0.4, 0.1, 0.5, 0.9, 0.2, 0.6];
const b = [2, 7, 1, 8, 2, 8, 1, 8];

test('average ranks share ties', () => {
  assert.deepEqual(averageRanks([10, 20, 10, 30]), [1.5, 3, 1.5, 4]);
  assert.deepEqual(averageRanks([5, 5, 5]), [2, 2, 2]);
});

test('Spearman and Kendall tau-b equal scipy with ties on both sides; a ranking with itself is 1', () => {
  assert.ok(Math.abs(spearman(a, b) - 0.19885368120992467) < 1e-12);
  assert.ok(Math.abs(kendallTau(a, b) - 0.16051447078102563) < 1e-12);
  assert.equal(spearman(a, a), 1);
  assert.equal(kendallTau(a, a), 1);
  assert.equal(spearman([1, 2, 3], [30, 20, 10]), -1);
  assert.ok(Math.abs(spearman([1, 2, 3], [1, 4, 9]) - 1) < 1e-15, 'monotone, not linear: still 1');
  assert.throws(() => spearman([1], [1]), /at least 2 pairs/);
  assert.throws(() => spearman([1, 2], [1]), /2 values against 1/);
  assert.throws(() => spearman([1, NaN], [1, 2]), /finite/);
});

test('ROC AUC equals the Mann-Whitney statistic; the curve and low-FPR TPR', () => {
  const pos = [0.9, 0.8, 0.8, 0.3, 0.5];
  const neg = [0.1, 0.8, 0.2, 0.4, 0.5, 0.05];
  assert.ok(Math.abs(rocAuc(pos, neg) - 0.8166666666666667) < 1e-12);
  const roc = rocCurve(pos, neg);
  assert.deepEqual(roc[0], { fpr: 0, tpr: 0 });
  assert.deepEqual(roc[roc.length - 1], { fpr: 1, tpr: 1 });
  // Tied scores move together: 0.8 holds two positives and one negative.
  assert.deepEqual(roc[2], { fpr: 1 / 6, tpr: 3 / 5 });
  // Trapezoids under the curve give the same area.
  let area = 0;
  for (let i = 1; i < roc.length; i++)
    area += ((roc[i].fpr - roc[i - 1].fpr) * (roc[i].tpr + roc[i - 1].tpr)) / 2;
  assert.ok(Math.abs(area - rocAuc(pos, neg)) < 1e-12);
  assert.equal(tprAtFpr(pos, neg, 0.1), 1 / 5, 'before any negative: only 0.9');
  assert.equal(tprAtFpr(pos, neg, 0), 0, 'nothing is strictly below FPR 0');
  assert.equal(tprAtFpr(pos, neg, 1 / 6 + 1e-9), 3 / 5, 'the vertical segment at FPR 1/6 counts its top');
  assert.equal(rocAuc([1, 2], [1, 2]), 0.5);
  assert.throws(() => rocAuc([], [1]), /positives and negatives/);
});

test('median', () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 2, 3]), 2.5);
  assert.equal(median([]), undefined);
});
