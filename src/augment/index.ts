import * as E from '../engine/index.js';
import { DcAugment } from './dcaug.js';
import { DSA, defaultStrategy } from './dsa.js';

export {
  DSA,
  DSA_DEFAULTS,
  DsaError,
  GROUPS,
  defaultStrategy,
  type DsaOptions,
  type Group,
  type SegmentParams,
} from './dsa.js';
export {
  DC_AUGMENT_DEFAULTS,
  DC_OPS,
  DcAugment,
  type DcAugmentOptions,
  type DcDraw,
  type DcOp,
} from './dcaug.js';

/** Augments one training batch with fresh draws (evaluation networks, experts, DC's inner loop). */
export interface BatchAugmenter {
  augmentBatch(x: E.Tensor, gen: E.Generator): E.Tensor;
}

/**
 * The augmentation a training protocol names: 'none', a DSA strategy (e.g.
 * 'color_crop_cutout_scale_rotate'), or 'dc:' and DC's evaluation ops (e.g. 'dc:crop_scale_rotate').
 *
 * @example batchAugmenter('dc:crop_noise')?.augmentBatch(images, gen)
 */
export function batchAugmenter(spec: string): BatchAugmenter | null {
  if (spec === 'none') return null;
  if (spec.startsWith('dc:')) return new DcAugment(spec.slice('dc:'.length));
  return new DSA({ strategy: spec });
}

/**
 * A method's DSA from its `dsa` / `dsaStrategy` settings: null when off, else the given strategy or the
 * dataset's default (no flips for digits).
 *
 * @example methodDsa({ dsa: true }, 'mnist') // DSA with 'color_crop_cutout_scale_rotate'
 */
export function methodDsa(config: { dsa: boolean; dsaStrategy?: string }, datasetName: string): DSA | null {
  return config.dsa ? new DSA({ strategy: config.dsaStrategy ?? defaultStrategy(datasetName) }) : null;
}
