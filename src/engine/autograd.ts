// Reverse-mode automatic differentiation to any order (libtorch's autograd).
import { EngineError, run } from './errors.js';
import { native } from './native.js';
import { Tensor } from './tensor.js';

export interface GradOptions {
  /** Weights of the outputs (vector-Jacobian product); required for non-scalar outputs. */
  gradOutputs?: Tensor[];
  /** Keep the graph of the gradient itself, so it can be differentiated again. */
  createGraph?: boolean;
  /** Keep the forward graph after this call (defaults to createGraph). */
  retainGraph?: boolean;
  /** Return null for inputs the outputs do not depend on instead of throwing. */
  allowUnused?: boolean;
}

/** Gradients of sum(outputs * gradOutputs) with respect to each input. */
export function grad(
  outputs: Tensor | Tensor[],
  inputs: Tensor[],
  o: GradOptions & { allowUnused: true },
): (Tensor | null)[];
export function grad(outputs: Tensor | Tensor[], inputs: Tensor[], o?: GradOptions): Tensor[];
export function grad(outputs: Tensor | Tensor[], inputs: Tensor[], o: GradOptions = {}): (Tensor | null)[] {
  const outs = Array.isArray(outputs) ? outputs : [outputs];
  if (o.gradOutputs && o.gradOutputs.length !== outs.length) {
    throw new EngineError(
      'grad',
      `gradOutputs has ${o.gradOutputs.length} tensors for ${outs.length} outputs`,
    );
  }
  if (!o.gradOutputs) {
    const nonScalar = outs.find((t) => t.numel !== 1);
    if (nonScalar) {
      throw new EngineError(
        'grad',
        `output of shape [${nonScalar.shape.join(', ')}] is not a scalar: pass gradOutputs`,
      );
    }
  }
  const handles = run('grad', () =>
    native.grad(
      outs.map((t) => t.handle),
      inputs.map((t) => t.handle),
      o.gradOutputs ? o.gradOutputs.map((t) => t.handle) : null,
      o.retainGraph ?? null,
      o.createGraph ?? false,
      o.allowUnused ?? false,
    ),
  );
  return handles.map((h) => (h === null ? null : new Tensor(h)));
}

function withGradMode<T>(enabled: boolean, fn: () => T): T {
  const previous = native.setGradEnabled(enabled);
  try {
    const result = fn();
    if (result instanceof Promise) throw new Error('noGrad()/enableGrad() cannot wrap an async function');
    return result;
  } finally {
    native.setGradEnabled(previous);
  }
}

/** Runs fn without recording operations for autograd (cheaper; results have no graph). */
export function noGrad<T>(fn: () => T): T {
  return withGradMode(false, fn);
}

/** Runs fn with autograd recording on, also inside noGrad(). */
export function enableGrad<T>(fn: () => T): T {
  return withGradMode(true, fn);
}

export function isGradEnabled(): boolean {
  return native.isGradEnabled();
}
