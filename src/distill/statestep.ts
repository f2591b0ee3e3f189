// One step of an engine optimizer over tensors a method keeps in its checkpointed state (ctx.state):
// RFAD's Platt scale, DD's per-step lrs, FRePo's pool models. The optimizer's buffers and step count
// live in ctx.state beside the tensors (`<prefix>opt.<slot>.<i>`, `<prefix>opt.step`), so a resumed
// run continues them exactly.
import * as E from '../engine/index.js';

/**
 * Replaces ctx.state's `names` by one update of `make(params)` with `grads`, carrying its state.
 *
 * @example stepInState(ctx.state, 'platt.', ['platt.k'], [g], (p) => new E.AdaBelief(p, { lr: 1e-2, eps: 1e-16 }));
 */
export function stepInState(
  state: Map<string, E.Tensor>,
  prefix: string,
  names: string[],
  grads: E.Tensor[],
  make: (params: E.Tensor[]) => E.Optimizer,
): void {
  const params = names.map((n) => (state.get(n) as E.Tensor).detach().clone());
  const opt = make(params);
  const step = state.get(`${prefix}opt.step`);
  if (step) {
    const buffers: Record<string, E.Tensor> = {};
    for (const [k, t] of state)
      if (k.startsWith(`${prefix}opt.`) && k !== `${prefix}opt.step`) buffers[k.slice(prefix.length + 4)] = t;
    opt.loadStateDict({ kind: opt.kind, lr: opt.lr, step: step.item(), buffers });
  }
  opt.step(grads);
  const saved = opt.stateDict();
  for (const [k, t] of Object.entries(saved.buffers)) {
    state.get(`${prefix}opt.${k}`)?.dispose();
    state.set(`${prefix}opt.${k}`, t.keep());
  }
  state.get(`${prefix}opt.step`)?.dispose();
  state.set(`${prefix}opt.step`, E.tensor(saved.step, { dtype: 'float64' }).keep());
  opt.disposeState();
  names.forEach((n, i) => {
    state.get(n)?.dispose();
    state.set(n, params[i].keep());
  });
}
