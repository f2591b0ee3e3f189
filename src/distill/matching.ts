// Distances between two lists of parameter gradients (gradient matching: DC,
// DSA, IDC), as in the reference match_loss():
//   ours: sum over layers, over output rows j, of 1 - <a_j, b_j> / (|a_j| |b_j| + 1e-6);
//         1-D parameters (biases, norm scales/shifts) contribute nothing
//   mse:  squared Euclidean distance of the flattened, concatenated gradients
//   cos:  1 - cosine of the flattened, concatenated gradients
import * as E from '../engine/index.js';

export const DISTANCES = ['ours', 'mse', 'cos'] as const;
export type Distance = (typeof DISTANCES)[number];

const EPS = 1e-6;

/** Layer-wise "ours" distance of one parameter's gradients (0 for 1-D parameters). */
function rowCosineDistance(a: E.Tensor, b: E.Tensor): E.Tensor | null {
  if (a.ndim <= 1) return null;
  // Rows are output units: conv [out, in, kh, kw] -> [out, in*kh*kw]; layer norm [C, H, W] -> [C, H*W].
  const rows = a.size(0);
  const ar = a.reshape(rows, -1);
  const br = b.reshape(rows, -1);
  const dot = ar.mul(br).sum(-1);
  const norms = ar.norm(2, -1).mul(br.norm(2, -1)).add(EPS);
  return dot.div(norms).neg().add(1).sum();
}

function flatten(gs: E.Tensor[]): E.Tensor {
  return E.cat(
    gs.map((g) => g.reshape(-1)),
    0,
  );
}

/** d(synthetic, real): differentiable in both lists (real is normally detached). */
export function gradientDistance(syn: E.Tensor[], real: E.Tensor[], metric: Distance): E.Tensor {
  if (syn.length !== real.length)
    throw new Error(`gradientDistance: ${syn.length} synthetic vs ${real.length} real gradients`);
  if (metric === 'ours') {
    let total: E.Tensor | null = null;
    for (let i = 0; i < syn.length; i++) {
      const d = rowCosineDistance(syn[i], real[i]);
      if (d) total = total ? total.add(d) : d;
    }
    return total ?? E.zeros([], { dtype: syn[0].dtype });
  }
  const s = flatten(syn);
  const r = flatten(real);
  if (metric === 'mse') return s.sub(r).square().sum();
  const cos = s.mul(r).sum().div(s.norm().mul(r.norm()).add(EPS));
  return cos.neg().add(1);
}
