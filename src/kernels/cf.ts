// The characteristic-function discrepancy of NCFM (Wang et al. 2025; reference gszfwsb/NCFM
// NCFM/NCFM.py CFLossFunc): with the empirical characteristic function
//   phi_X(t) = mean_j exp(i t . x_j)   (real part mean cos, imaginary part mean sin)
// at frequencies t (rows of `freqs`), per frequency
//   amplitude term  (|phi_R| - |phi_S|)^2
//   phase term      2 (|phi_R| |phi_S| - Re phi_R Re phi_S - Im phi_R Im phi_S), clamped below at 1e-12
// and the loss is mean_t sqrt(alpha amplitude + beta phase). With alpha = beta = 1 the sum under the root
// is |phi_R(t) - phi_S(t)|^2 (amplitude and phase of the difference, split so they can be weighted).
import type * as E from '../engine/index.js';

export interface CFWeights {
  /** Weight of the amplitude term (the reference's alpha_for_loss, default 0.5). */
  alpha: number;
  /** Weight of the phase term (beta_for_loss, default 0.5). */
  beta: number;
}

function ecf(x: E.Tensor, freqs: E.Tensor): { re: E.Tensor; im: E.Tensor; norm: E.Tensor } {
  const tx = freqs.matmul(x.t());
  const re = tx.cos().mean(1);
  const im = tx.sin().mean(1);
  return { re, im, norm: re.square().add(im.square()).sqrt() };
}

/**
 * The CF discrepancy of real [n, D] and synthetic [m, D] samples at frequencies [F, D]; a scalar,
 * differentiable in both samples and the frequencies.
 *
 * @example cfDiscrepancy(realFeatures, synFeatures, E.randn([4096, D], { generator }), { alpha: 0.5, beta: 0.5 })
 */
export function cfDiscrepancy(real: E.Tensor, syn: E.Tensor, freqs: E.Tensor, w: CFWeights): E.Tensor {
  if (real.ndim !== 2 || syn.ndim !== 2 || freqs.ndim !== 2)
    throw new Error(
      `cfDiscrepancy: samples and frequencies must be 2-d (got [${real.shape.join(', ')}], [${syn.shape.join(', ')}], [${freqs.shape.join(', ')}])`,
    );
  const d = freqs.size(1);
  if (real.size(1) !== d || syn.size(1) !== d)
    throw new Error(
      `cfDiscrepancy: frequencies of dimension ${d} for samples of dimension ${real.size(1)} and ${syn.size(1)}`,
    );
  const r = ecf(real, freqs);
  const s = ecf(syn, freqs);
  const amplitude = r.norm.sub(s.norm).square();
  const phase = r.norm.mul(s.norm).sub(s.re.mul(r.re)).sub(s.im.mul(r.im)).mul(2).clamp(1e-12);
  return amplitude.mul(w.alpha).add(phase.mul(w.beta)).sqrt().mean();
}
