// Stochastic gradient descent with momentum, dampening, Nesterov and weight decay
// (the same update rule as torch.optim.SGD).
import { EngineError } from '../errors.js';
import type { Tensor } from '../tensor.js';
import { Optimizer } from './optimizer.js';

export interface SGDOptions {
  lr: number;
  momentum?: number;
  dampening?: number;
  nesterov?: boolean;
  weightDecay?: number;
}

export class SGD extends Optimizer {
  readonly kind = 'SGD';
  readonly momentum: number;
  readonly dampening: number;
  readonly nesterov: boolean;
  readonly weightDecay: number;

  constructor(params: Tensor[], o: SGDOptions) {
    super(params, o.lr);
    this.momentum = o.momentum ?? 0;
    this.dampening = o.dampening ?? 0;
    this.nesterov = o.nesterov ?? false;
    this.weightDecay = o.weightDecay ?? 0;
    if (this.nesterov && (this.momentum <= 0 || this.dampening !== 0)) {
      throw new EngineError('SGD', 'Nesterov momentum needs momentum > 0 and dampening 0');
    }
  }

  protected update(p: Tensor, g: Tensor, i: number): void {
    let d = this.weightDecay !== 0 ? g.add(p, this.weightDecay) : g;
    if (this.momentum !== 0) {
      let buf = this.getBuffer('momentum', i);
      if (buf === null) buf = this.setBuffer('momentum', i, d.clone());
      else buf.mul_(this.momentum).add_(d, 1 - this.dampening);
      d = this.nesterov ? d.add(buf, this.momentum) : buf;
    }
    p.add_(d, -this.lr);
  }
}
