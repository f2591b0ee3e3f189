// DD-Ranking's scores (NUS-HPC-AI-Lab/DD-Ranking, ddranking/metrics), computed honestly:
//   HLR (hard-label recovery)      = Acc(full data, hard labels) - Acc(synthetic, hard labels)
//   IOR (improvement over random)  = Acc(synthetic, its protocol) - Acc(random subset, same protocol)
//   LRS (label-robust score)       = normalize(w IOR - (1 - w) HLR),                 w = 0.5
//   ARS (augmentation-robust score) = normalize(g (syn_aug - rdm_aug) + (1 - g) (syn_noaug - rdm_noaug)), g = 0.5
//   normalize(x) = (e^x - e^-1) / (e - e^-1), which maps [-1, 1] onto [0, 1].
// Differences from the reference implementation, on purpose: accuracies are fractions in [0, 1] (the
// reference feeds percentages into the exponential, so its scores leave [0, 1]); every accuracy is the
// final epoch's mean over networks (the reference takes the best test accuracy over epochs); nothing is
// chosen on the test split (the reference grid-searches the learning rate on it): the protocol's lr, or
// the set's own learned lr, is used as it is.

/** Accuracies (fractions) that the scores are built from; each a mean over networks. */
export interface ScoreInputs {
  /** Synthetic set under its method's protocol (soft labels, learned lr, augmentation). */
  synthetic: number;
  /** Synthetic set with hard labels (the argmax of soft ones), the protocol's lr. */
  syntheticHard: number;
  /** Synthetic set under its protocol with augmentation (the dataset's DSA when the protocol has none); default: synthetic. */
  syntheticAug?: number;
  /** Synthetic set under its protocol without augmentation. */
  syntheticNoAug: number;
  /** Random real subsets of the same size (hard labels), with and without augmentation. */
  random: number;
  /** Random subsets with augmentation (default: random). */
  randomAug?: number;
  randomNoAug: number;
  /** The full training set, hard labels. */
  full: number;
}

export interface HonestScores {
  hlr: number;
  ior: number;
  lrs: number;
  ars: number;
}

/** (e^x - e^-1) / (e - e^-1): 0 at x = -1, 1 at x = 1. */
export function normalizeScore(x: number): number {
  return (Math.exp(x) - Math.exp(-1)) / (Math.E - Math.exp(-1));
}

function checkFraction(name: string, v: number): void {
  if (!Number.isFinite(v) || v < 0 || v > 1)
    throw new RangeError(`${name} must be an accuracy fraction in [0, 1], got ${v} (a percentage?)`);
}

/**
 * The four scores from accuracies given as fractions.
 *
 * @example honestScores({ synthetic: 0.9, syntheticHard: 0.9, syntheticNoAug: 0.85, random: 0.6, randomNoAug: 0.55, full: 0.99 })
 */
export function honestScores(a: ScoreInputs, o: { w?: number; g?: number } = {}): HonestScores {
  for (const [k, v] of Object.entries(a)) if (v !== undefined) checkFraction(k, v);
  const w = o.w ?? 0.5;
  const g = o.g ?? 0.5;
  const hlr = a.full - a.syntheticHard;
  const ior = a.synthetic - a.random;
  return {
    hlr,
    ior,
    lrs: normalizeScore(w * ior - (1 - w) * hlr),
    ars: normalizeScore(
      g * ((a.syntheticAug ?? a.synthetic) - (a.randomAug ?? a.random)) +
        (1 - g) * (a.syntheticNoAug - a.randomNoAug),
    ),
  };
}
