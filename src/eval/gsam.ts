// GSAM, surrogate-gap guided sharpness-aware minimisation (Zhuang et al. 2022), as FTD trains its
// flat experts (AngusDujw/FTD-distillation buffer/gsam/gsam.py GSAM.step, adaptive as buffer_FTD.py
// always runs it). On one batch B (augmented once, both passes see the same images):
//   g   = grad L(w; B)
//   e   = rho w^2 g / (|| |w| g || + 1e-12)     (adaptive; rho g / (||g|| + 1e-12) otherwise)
//   g_p = grad L(w + e; B)
//   g_orth = g - <g, g_p> / (||g_p|| ||g|| + 1e-12) ||g|| g_p / (||g_p|| + 1e-12)
//   d   = g_p - alpha g_orth                     (what the base optimizer steps with, at w)
// Norms are global over all parameters. The returned loss and logits are the clean pass's, as the
// reference logs them.
import * as E from '../engine/index.js';

export interface GSAMSettings {
  /** Perturbation radius (FTD's run_buffer.sh: 0.01, constant). */
  rho: number;
  /** Weight of the ascent along the clean gradient's component orthogonal to g_p (FTD: 0.4). */
  alpha: number;
  /** Scale the perturbation by w^2 (ASAM-style); FTD's `--adaptive` is always on. */
  adaptive: boolean;
}

const EPS = 1e-12;

/** sum_i <a_i, b_i> over a list of tensors, read once (a float). */
function globalDot(a: E.Tensor[], b: E.Tensor[]): number {
  return E.stack(
    a.map((t, i) => t.mul(b[i]).sum()),
    0,
  )
    .sum()
    .item();
}

/** Global L2 norm of a list of tensors (a float). */
function globalNorm(ts: E.Tensor[]): number {
  return Math.sqrt(globalDot(ts, ts));
}

/**
 * The GSAM update direction for `params` from `pass`, which computes the loss and one gradient per
 * parameter at the parameters' current values. The parameters are perturbed in place for the second
 * pass and restored exactly before it returns.
 *
 * @example const { grads } = gsamGradients(params, () => lossAndGradients(...), { rho: 0.01, alpha: 0.4, adaptive: true });
 */
export function gsamGradients<R extends { grads: E.Tensor[] }>(
  params: E.Tensor[],
  pass: () => R,
  s: GSAMSettings,
): R {
  const clean = pass();
  const g = clean.grads;
  const perturbation = E.noGrad(() => {
    const scaled = s.adaptive ? g.map((gi, i) => gi.mul(params[i].abs())) : g;
    const scale = s.rho / (globalNorm(scaled) + EPS);
    return g.map((gi, i) => {
      const e = s.adaptive ? gi.mul(params[i].square()).mul(scale) : gi.mul(scale);
      params[i].add_(e);
      return e;
    });
  });
  let perturbed: R;
  try {
    perturbed = pass();
  } finally {
    E.noGrad(() => params.forEach((p, i) => p.sub_(perturbation[i])));
  }
  const gp = perturbed.grads;
  const direction = E.noGrad(() => {
    const inner = globalDot(g, gp);
    const gNorm = globalNorm(g);
    const gpNorm = globalNorm(gp);
    const cosine = inner / (gpNorm * gNorm + EPS);
    const along = (cosine * gNorm) / (gpNorm + EPS);
    // d = g_p - alpha (g - along g_p)
    return gp.map((gpi, i) => gpi.sub(g[i].sub(gpi.mul(along)).mul(s.alpha)));
  });
  return { ...clean, grads: direction };
}
