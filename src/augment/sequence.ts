// IDC's DiffAugment (snu-mllab/Efficient-Dataset-Condensation, and NCFM's copy of it in utils/diffaug.py
// DiffAug.__call__): whatever order the strategy lists them in, flip (if listed), then color (brightness,
// saturation, contrast), then ONE op drawn among the other listed ones (crop, scale, rotate), then cutout
// (if listed). With 'color_crop_cutout' that is every op in order. In the matching one draw per op is
// shared by a whole batch (`batch=True`: the real and synthetic images of a class); in network training
// the op drawn is shared by the batch and every image draws its own parameters.
import * as E from '../engine/index.js';
import { DSA, DsaError, GROUPS } from './dsa.js';

export class OpSequence {
  private readonly ops: DSA[];
  /** What applies, in order: one entry per draw ('crop_scale': one of the two per draw). */
  readonly steps: readonly string[];

  /**
   * @param strategy ops joined by '_' ('' or 'none': no augmentation)
   * @param without ops to leave out (IDC drops cutout where CutMix is on)
   * @example new OpSequence('color_crop_cutout').shared([real, syn], gen)
   */
  constructor(strategy: string, without: string[] = []) {
    const listed = strategy.split('_').filter((g) => g && g !== 'none' && !without.includes(g));
    const unknown = listed.filter((g) => !(GROUPS as readonly string[]).includes(g));
    if (unknown.length)
      throw new DsaError(
        `unknown augmentation '${unknown.join("', '")}' in strategy '${strategy}' (valid: ${GROUPS.join(', ')}, or 'none')`,
      );
    const fixed = ['flip', 'color', 'cutout'];
    // DSA with several groups draws one of them per call: the reference's single_aug choice.
    const others = listed.filter((g) => !fixed.includes(g));
    const at = (g: string) => (listed.includes(g) ? [new DSA({ strategy: g })] : []);
    this.ops = [
      ...at('flip'),
      ...at('color'),
      ...(others.length ? [new DSA({ strategy: others.join('_') })] : []),
      ...at('cutout'),
    ];
    this.steps = this.ops.map((op) => op.options.strategy);
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
