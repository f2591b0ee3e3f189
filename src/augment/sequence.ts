// IDC's DiffAugment (snu-mllab/Efficient-Dataset-Condensation, and NCFM's copy of it in utils/diffaug.py):
// unlike DSA's mode 'S' (one group per draw), every op the strategy lists is applied, in order. In the
// matching one draw per op is shared by a whole batch (`batch=True`: the real and synthetic images of a
// class); in network training every image draws its own.
import * as E from '../engine/index.js';
import { DSA } from './dsa.js';

export class OpSequence {
  private readonly ops: DSA[];

  /**
   * @param strategy ops joined by '_' ('' or 'none': no augmentation)
   * @param without ops to leave out (IDC drops cutout where CutMix is on)
   * @example new OpSequence('color_crop_cutout').shared([real, syn], gen)
   */
  constructor(
    readonly strategy: string,
    without: string[] = [],
  ) {
    this.ops = strategy
      .split('_')
      .filter((g) => g && g !== 'none' && !without.includes(g))
      .map((g) => new DSA({ strategy: g }));
  }

  /** Every tensor of `xs` under the same draw of each op (one draw per op for all their images). */
  shared(xs: E.Tensor[], gen: E.Generator): E.Tensor[] {
    let out = xs;
    for (const op of this.ops) {
      const [draw] = op.sample(1, gen);
      out = out.map((x) => op.apply(x, [draw], [x.size(0)]));
    }
    return out;
  }

  /** One batch with a fresh draw of each op for every image (network training). */
  perImage(x: E.Tensor, gen: E.Generator): E.Tensor {
    return this.ops.reduce((acc, op) => op.augmentBatch(acc, gen), x);
  }
}
