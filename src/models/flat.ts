// A network's parameters as one flat vector (trajectory matching works on
// theta in R^P: expert checkpoints, unrolled student updates, parameter
// distances). The layout records each parameter's name and shape in
// definition order; unflatten() returns differentiable views into the vector.
import * as E from '../engine/index.js';
import type { NetState } from './layers.js';

export interface ParamEntry {
  name: string;
  shape: number[];
}

export type ParamLayout = ParamEntry[];

export function paramLayout(state: NetState): ParamLayout {
  return [...state.params].map(([name, t]) => ({ name, shape: [...t.shape] }));
}

export function layoutSize(layout: ParamLayout): number {
  return layout.reduce((n, p) => n + p.shape.reduce((a, b) => a * b, 1), 0);
}

/** All parameters concatenated in layout order (detached copy). */
export function flattenParams(state: NetState): E.Tensor {
  return E.tidy(() =>
    E.cat(
      [...state.params.values()].map((p) => p.detach().reshape(-1)),
      0,
    ),
  );
}

/** Parameter views into `flat` (differentiable with respect to it). */
export function unflattenParams(flat: E.Tensor, layout: ParamLayout): NetState {
  const size = layoutSize(layout);
  if (flat.ndim !== 1 || flat.size(0) !== size)
    throw new Error(`flat parameters have shape [${flat.shape.join(', ')}], the layout needs [${size}]`);
  const params = new Map<string, E.Tensor>();
  let offset = 0;
  for (const p of layout) {
    const n = p.shape.reduce((a, b) => a * b, 1);
    params.set(p.name, flat.narrow(0, offset, n).reshape(p.shape));
    offset += n;
  }
  return { params, buffers: new Map() };
}

/** Whether two layouts name the same parameters with the same shapes, in the same order. */
export function sameLayout(a: ParamLayout, b: ParamLayout): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
