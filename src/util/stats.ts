// Small statistics on plain numbers, shared by the study runner, the applications and the benchmarks:
// medians, rank correlations (architecture-search proxies), ROC curves (membership attacks).

/** The median (the mean of the two middle values for an even count); undefined for no values. */
export function median(xs: readonly number[]): number | undefined {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** 1-based ranks in ascending order, ties sharing their average rank (what Spearman's rho needs). */
export function averageRanks(xs: readonly number[]): number[] {
  const order = xs.map((_, i) => i).sort((a, b) => xs[a] - xs[b]);
  const ranks = new Array<number>(xs.length);
  for (let start = 0; start < order.length;) {
    let end = start + 1;
    while (end < order.length && xs[order[end]] === xs[order[start]]) end++;
    const rank = (start + 1 + end) / 2; // the mean of ranks start+1 .. end
    for (let k = start; k < end; k++) ranks[order[k]] = rank;
    start = end;
  }
  return ranks;
}

function pearson(a: readonly number[], b: readonly number[]): number {
  const n = a.length;
  const ma = a.reduce((s, v) => s + v, 0) / n;
  const mb = b.reduce((s, v) => s + v, 0) / n;
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < n; i++) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) ** 2;
    sbb += (b[i] - mb) ** 2;
  }
  // A constant ranking carries no order: its correlation with anything is undefined, reported as 0.
  return saa === 0 || sbb === 0 ? 0 : sab / Math.sqrt(saa * sbb);
}

function checkPaired(a: readonly number[], b: readonly number[], what: string): void {
  if (a.length !== b.length) throw new Error(`${what}: ${a.length} values against ${b.length}`);
  if (a.length < 2) throw new Error(`${what} needs at least 2 pairs, got ${a.length}`);
  if (![...a, ...b].every(Number.isFinite)) throw new Error(`${what}: values must be finite numbers`);
}

/**
 * Spearman's rank correlation: the Pearson correlation of the average ranks (scipy.stats.spearmanr).
 *
 * @example spearman([0.1, 0.5, 0.3], [1, 3, 2]) // 1
 */
export function spearman(a: readonly number[], b: readonly number[]): number {
  checkPaired(a, b, 'spearman');
  return pearson(averageRanks(a), averageRanks(b));
}

/** Kendall's tau-b (ties in either ranking corrected, as scipy.stats.kendalltau). O(n^2). */
export function kendallTau(a: readonly number[], b: readonly number[]): number {
  checkPaired(a, b, 'kendallTau');
  let concordant = 0;
  let discordant = 0;
  let tiesA = 0;
  let tiesB = 0;
  for (let i = 0; i < a.length; i++)
    for (let j = i + 1; j < a.length; j++) {
      const da = Math.sign(a[i] - a[j]);
      const db = Math.sign(b[i] - b[j]);
      if (da === 0 && db === 0) continue;
      if (da === 0) tiesA++;
      else if (db === 0) tiesB++;
      else if (da === db) concordant++;
      else discordant++;
    }
  const denominator = Math.sqrt((concordant + discordant + tiesA) * (concordant + discordant + tiesB));
  return denominator === 0 ? 0 : (concordant - discordant) / denominator;
}

export interface RocPoint {
  fpr: number;
  tpr: number;
}

function checkScores(positives: readonly number[], negatives: readonly number[], what: string): void {
  if (positives.length === 0 || negatives.length === 0)
    throw new Error(`${what} needs positives and negatives, got ${positives.length} and ${negatives.length}`);
  if (![...positives, ...negatives].every((v) => !Number.isNaN(v)))
    throw new Error(`${what}: a score is NaN`);
}

/**
 * The ROC curve of "score above threshold means positive", one point per distinct threshold from
 * the highest score down (tied scores move together), starting at (0, 0) and ending at (1, 1).
 */
export function rocCurve(positives: readonly number[], negatives: readonly number[]): RocPoint[] {
  checkScores(positives, negatives, 'rocCurve');
  const all = [
    ...positives.map((s) => ({ s, pos: true })),
    ...negatives.map((s) => ({ s, pos: false })),
  ].sort((x, y) => y.s - x.s);
  const points: RocPoint[] = [{ fpr: 0, tpr: 0 }];
  let tp = 0;
  let fp = 0;
  for (let i = 0; i < all.length;) {
    let j = i;
    while (j < all.length && all[j].s === all[i].s) {
      if (all[j].pos) tp++;
      else fp++;
      j++;
    }
    points.push({ fpr: fp / negatives.length, tpr: tp / positives.length });
    i = j;
  }
  return points;
}

/**
 * The area under the ROC curve: the probability that a random positive scores above a random
 * negative, ties counting one half (the Mann-Whitney U statistic over n_pos x n_neg).
 *
 * @example rocAuc([0.9, 0.8], [0.1, 0.85]) // 0.75
 */
export function rocAuc(positives: readonly number[], negatives: readonly number[]): number {
  checkScores(positives, negatives, 'rocAuc');
  const ranks = averageRanks([...positives, ...negatives]);
  const positiveRankSum = ranks.slice(0, positives.length).reduce((s, r) => s + r, 0);
  const u = positiveRankSum - (positives.length * (positives.length + 1)) / 2;
  return u / (positives.length * negatives.length);
}

/**
 * The largest TPR at an ROC point whose FPR is strictly below `fpr` (LiRA's plot.py: "TPR at 0.1 %
 * FPR"). With n negatives the smallest nonzero FPR is 1/n: below it only the points before any
 * negative count.
 */
export function tprBelow(roc: readonly RocPoint[], fpr: number): number {
  return roc.filter((p) => p.fpr < fpr).reduce((best, p) => Math.max(best, p.tpr), 0);
}

/** tprBelow on the ROC curve of the scores. */
export function tprAtFpr(positives: readonly number[], negatives: readonly number[], fpr: number): number {
  return tprBelow(rocCurve(positives, negatives), fpr);
}
