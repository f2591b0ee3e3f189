// Adam (Kingma & Ba) and AdamW (decoupled weight decay), as torch.optim.Adam/AdamW.
import { zerosLike } from '../creation.js';
import type { Tensor } from '../tensor.js';
import { Optimizer } from './optimizer.js';

export interface AdamOptions {
  lr?: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
}

export class Adam extends Optimizer {
  readonly kind: string = 'Adam';
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  /** AdamW applies weight decay to the parameters directly, not through the gradient. */
  protected readonly decoupled: boolean = false;

  constructor(params: Tensor[], o: AdamOptions = {}) {
    super(params, o.lr ?? 1e-3);
    [this.beta1, this.beta2] = o.betas ?? [0.9, 0.999];
    this.eps = o.eps ?? 1e-8;
    this.weightDecay = o.weightDecay ?? 0;
  }

  protected update(p: Tensor, g: Tensor, i: number): void {
    let grad = g;
    if (this.weightDecay !== 0) {
      if (this.decoupled) p.mul_(1 - this.lr * this.weightDecay);
      else grad = g.add(p, this.weightDecay);
    }
    const m = this.getBuffer('expAvg', i) ?? this.setBuffer('expAvg', i, zerosLike(p));
    const v = this.getBuffer('expAvgSq', i) ?? this.setBuffer('expAvgSq', i, zerosLike(p));
    m.lerp_(grad, 1 - this.beta1);
    v.mul_(this.beta2).addcmul_(grad, grad, 1 - this.beta2);
    const bias1 = 1 - this.beta1 ** this.stepCount;
    const bias2 = 1 - this.beta2 ** this.stepCount;
    const denom = v.sqrt().div_(Math.sqrt(bias2)).add_(this.eps);
    p.addcdiv_(m, denom, -this.lr / bias1);
  }
}

export class AdamW extends Adam {
  override readonly kind: string = 'AdamW';
  protected override readonly decoupled: boolean = true;

  constructor(params: Tensor[], o: AdamOptions = {}) {
    super(params, { ...o, weightDecay: o.weightDecay ?? 1e-2 });
  }
}
