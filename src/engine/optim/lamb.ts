// LAMB (You et al. 2020), as optax.lamb with its defaults: Adam's bias-corrected direction
// u = m_hat / (sqrt(v_hat) + eps) (eps 1e-6), plus decayed weights, scaled per parameter tensor by the
// trust ratio ||p|| / ||u|| (1 where either norm is 0), then by the learning rate.
import { zerosLike } from '../creation.js';
import type { Tensor } from '../tensor.js';
import { Optimizer } from './optimizer.js';

export interface LAMBOptions {
  lr?: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
}

export class LAMB extends Optimizer {
  readonly kind: string = 'LAMB';
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;

  constructor(params: Tensor[], o: LAMBOptions = {}) {
    super(params, o.lr ?? 1e-3);
    [this.beta1, this.beta2] = o.betas ?? [0.9, 0.999];
    this.eps = o.eps ?? 1e-6;
    this.weightDecay = o.weightDecay ?? 0;
  }

  protected update(p: Tensor, g: Tensor, i: number): void {
    const m = this.getBuffer('expAvg', i) ?? this.setBuffer('expAvg', i, zerosLike(p));
    const v = this.getBuffer('expAvgSq', i) ?? this.setBuffer('expAvgSq', i, zerosLike(p));
    m.lerp_(g, 1 - this.beta1);
    v.mul_(this.beta2).addcmul_(g, g, 1 - this.beta2);
    const mHat = m.div(1 - this.beta1 ** this.stepCount);
    const vHat = v.div(1 - this.beta2 ** this.stepCount);
    let u = mHat.div(vHat.sqrt().add(this.eps));
    if (this.weightDecay !== 0) u = u.add(p, this.weightDecay);
    const pNorm = p.norm().item();
    const uNorm = u.norm().item();
    const trust = pNorm > 0 && uNorm > 0 ? pNorm / uNorm : 1;
    p.sub_(u, this.lr * trust);
  }
}
