// Base of the optimizers: a list of parameter tensors updated in place, with
// per-parameter state that can be saved and restored exactly (for resumable runs).
import { noGrad } from '../autograd.js';
import { EngineError } from '../errors.js';
import { tidy } from '../scope.js';
import { Tensor } from '../tensor.js';

export interface OptimizerState {
  /** Optimizer name, checked on load. */
  kind: string;
  lr: number;
  step: number;
  /** State tensors keyed `<slot>.<parameter index>`, e.g. `momentum.0`. */
  buffers: Record<string, Tensor>;
}

export abstract class Optimizer {
  abstract readonly kind: string;
  /** Current learning rate; schedules change it between steps. */
  lr: number;
  protected stepCount = 0;
  /** Updates taken so far (restored by loadStateDict). */
  get steps(): number {
    return this.stepCount;
  }
  protected readonly slots = new Map<string, (Tensor | null)[]>();

  constructor(
    readonly params: Tensor[],
    lr: number,
  ) {
    if (params.length === 0) throw new EngineError('optimizer', 'needs at least one parameter tensor');
    if (!(lr >= 0)) throw new EngineError('optimizer', `learning rate must be non-negative, got ${lr}`);
    this.lr = lr;
  }

  /**
   * One update. Gradients are taken from `grads` when given (e.g. the result of
   * grad()), otherwise from each parameter's `.grad`.
   */
  step(grads?: readonly (Tensor | null)[]): void {
    if (grads && grads.length !== this.params.length) {
      throw new EngineError(
        `${this.kind}.step`,
        `got ${grads.length} gradients for ${this.params.length} parameters`,
      );
    }
    this.stepCount++;
    // tidy() releases every temporary of the update; state buffers are kept explicitly.
    noGrad(() =>
      tidy(() => {
        this.params.forEach((p, i) => {
          const g = grads ? grads[i] : p.grad;
          if (g !== null) this.update(p, g, i);
        });
      }),
    );
  }

  /** Clears accumulated `.grad` of every parameter. */
  zeroGrad(): void {
    for (const p of this.params) p.grad = null;
  }

  protected abstract update(param: Tensor, grad: Tensor, index: number): void;

  /** State buffer `slot` of parameter i, or null before its first update. */
  protected getBuffer(slot: string, i: number): Tensor | null {
    return this.slots.get(slot)?.[i] ?? null;
  }

  /** Stores t (kept alive across scopes) as state buffer `slot` of parameter i. */
  protected setBuffer(slot: string, i: number, t: Tensor): Tensor {
    let list = this.slots.get(slot);
    if (!list) {
      list = this.params.map(() => null);
      this.slots.set(slot, list);
    }
    list[i]?.dispose();
    list[i] = t.keep();
    return t;
  }

  /** Snapshot of the state (buffers are copies). */
  stateDict(): OptimizerState {
    const buffers: Record<string, Tensor> = {};
    for (const [slot, list] of this.slots) {
      list.forEach((b, i) => {
        if (b) buffers[`${slot}.${i}`] = b.clone();
      });
    }
    return { kind: this.kind, lr: this.lr, step: this.stepCount, buffers };
  }

  loadStateDict(state: OptimizerState): void {
    if (state.kind !== this.kind) {
      throw new EngineError(`${this.kind}.loadStateDict`, `state was saved by a ${state.kind} optimizer`);
    }
    this.disposeState();
    for (const [key, t] of Object.entries(state.buffers)) {
      const m = /^(.+)\.(\d+)$/.exec(key);
      const i = m ? Number(m[2]) : -1;
      if (!m || i >= this.params.length)
        throw new EngineError(`${this.kind}.loadStateDict`, `unexpected state entry '${key}'`);
      const want = this.params[i].shape;
      const got = t.shape;
      if (want.length !== got.length || want.some((v, k) => v !== got[k])) {
        throw new EngineError(
          `${this.kind}.loadStateDict`,
          `state '${key}' has shape [${got.join(', ')}], parameter ${i} has [${want.join(', ')}]`,
        );
      }
      this.setBuffer(m[1], i, t.clone());
    }
    this.lr = state.lr;
    this.stepCount = state.step;
  }

  /** Frees the state buffers. */
  disposeState(): void {
    for (const list of this.slots.values()) for (const b of list) b?.dispose();
    this.slots.clear();
  }
}
