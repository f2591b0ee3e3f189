// What the data-parallel methods share: which classes a rank matches, and the sum over ranks of the
// synthetic gradients and the loss that every rank then applies in the same optimizer step.
import * as E from '../engine/index.js';
import type { Network } from '../models/index.js';
import type { Collective } from './method.js';

/** The group when it has several ranks, else null (one process: nothing to share). */
export const sharedWorld = (world: Collective | undefined): Collective | null =>
  world && world.worldSize > 1 ? world : null;

/** The classes this rank matches: class c on rank c mod size (all of them in one process). */
export function myClasses(numClasses: number, world: Collective | null): number[] {
  return [...Array(numClasses).keys()].filter((c) => !world || c % world.worldSize === world.rank);
}

/**
 * Refuses a batch-norm network for several ranks: its statistics would be computed over the part a
 * rank holds (`split` says which), not over what one process sees.
 */
export function refuseBatchNorm(net: Network, world: Collective | null, split: string): void {
  if (world && net.hasBatchNorm)
    throw new Error(
      `${net.spec} has batch norm, whose statistics would ${split}; use a model without it (ConvNet) or one process`,
    );
}

/** True on every rank when it is true on any: a decision (stop, break) the ranks must take together. */
export function anyRank(world: Collective | null, flag: boolean): boolean {
  if (!world) return flag;
  const t = E.tensor([flag ? 1 : 0], { dtype: 'float64' });
  world.allReduce([t], 'max');
  const any = t.item() > 0;
  t.dispose();
  return any;
}

/**
 * Sums gradients (one per learnable, null where this rank computed none) and the loss over the ranks;
 * without a world, returns them as they are. A tensor that no rank differentiated stays null, so the
 * optimizer skips it as in one process.
 */
export function reduceGradients(
  world: Collective | null,
  grads: (E.Tensor | null)[],
  learnable: readonly E.Tensor[],
  loss: number,
): { grads: (E.Tensor | null)[]; loss: number } {
  if (!world) return { grads, loss };
  const dense = grads.map((g, i) => (g ?? E.zerosLike(learnable[i])).contiguous());
  const present = E.tensor(
    grads.map((g) => (g ? 1 : 0)),
    { dtype: 'float64' },
  );
  const total = E.tensor([loss], { dtype: 'float64' });
  world.allReduce([...dense, present, total]);
  const flags = present.toNumbers();
  const sum = total.item();
  present.dispose();
  total.dispose();
  return {
    grads: dense.map((g, i) => {
      if (flags[i] > 0) return g;
      g.dispose();
      return null;
    }),
    loss: sum,
  };
}
