// AdaBelief (Zhuang et al. 2020), as torch_optimizer.AdaBelief with its defaults (no rectification,
// no decoupled weight decay, no AMSGrad): Adam whose second moment tracks the squared deviation of the
// gradient from its running mean, (g - m)^2, and adds eps to that moment in place every step.
import { zerosLike } from '../creation.js';
import type { Tensor } from '../tensor.js';
import { Optimizer } from './optimizer.js';

export interface AdaBeliefOptions {
  lr?: number;
  betas?: [number, number];
  /** torch_optimizer's default is 1e-3; RFAD passes 1e-16. */
  eps?: number;
  weightDecay?: number;
}

export class AdaBelief extends Optimizer {
  readonly kind: string = 'AdaBelief';
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;

  constructor(params: Tensor[], o: AdaBeliefOptions = {}) {
    super(params, o.lr ?? 1e-3);
    [this.beta1, this.beta2] = o.betas ?? [0.9, 0.999];
    this.eps = o.eps ?? 1e-3;
    this.weightDecay = o.weightDecay ?? 0;
  }

  protected update(p: Tensor, g: Tensor, i: number): void {
    const grad = this.weightDecay !== 0 ? g.add(p, this.weightDecay) : g;
    const m = this.getBuffer('expAvg', i) ?? this.setBuffer('expAvg', i, zerosLike(p));
    const s = this.getBuffer('expAvgVar', i) ?? this.setBuffer('expAvgVar', i, zerosLike(p));
    m.lerp_(grad, 1 - this.beta1);
    const residual = grad.sub(m);
    s.mul_(this.beta2).addcmul_(residual, residual, 1 - this.beta2);
    const bias1 = 1 - this.beta1 ** this.stepCount;
    const bias2 = 1 - this.beta2 ** this.stepCount;
    // The reference adds eps to the stored moment itself (exp_avg_var.add_(eps)), so it accumulates.
    const denom = s.add_(this.eps).sqrt().div_(Math.sqrt(bias2)).add_(this.eps);
    p.addcdiv_(m, denom, -this.lr / bias1);
  }
}
