// LinBa (Deng & Russakovsky 2022, "Remember the Past"; princetonvisualai/RememberThePast-
// DatasetDistillation, compressors/imgs_embedding_basis_minibatch.py): every training image is a
// linear combination of shared bases, image = coefficients [N, bases] @ bases [bases, C*H/ds*W/ds],
// bilinearly upsampled by `downsample` (align_corners false). Class c owns `perClass` coefficient
// rows. Storage = bases (at the reduced resolution) + coefficients; by default perClass fills the
// budget of classes x ipc images as utils/Img_per_Cls_budget.py computes it. Both tensors start
// xavier-uniform, as the reference's (nothing is taken from the initial images).
import { z } from 'zod';
import * as E from '../engine/index.js';
import { budgetFloats, imageFloats, xavierBound } from './budget.js';
import {
  ParameterizationError,
  registerParameterization,
  type Parameterization,
  type ShapeInfo,
} from './kind.js';

const schema = z
  .object({
    bases: z.number().int().positive().default(16),
    /** The bases are stored at 1/downsample resolution per side. */
    downsample: z.number().int().positive().default(2),
    /** Coefficient rows (decoded images) per class; default: as many as the budget holds. */
    perClass: z.number().int().positive().optional(),
  })
  .strict();
type Settings = z.infer<typeof schema>;

function baseFloats(s: ShapeInfo, o: Settings): number {
  return (o.bases * imageFloats(s)) / (o.downsample * o.downsample);
}

/** The reference's rows per class: floor((budget - bases) / (classes * bases)). */
export function linbaPerClass(s: ShapeInfo, o: Settings): number {
  return o.perClass ?? Math.floor((budgetFloats(s) - baseFloats(s, o)) / (s.classes * o.bases));
}

class LinBa implements Parameterization {
  readonly kind = 'linba';
  readonly tensors;

  constructor(
    readonly coefficients: E.Tensor,
    readonly bases: E.Tensor,
    readonly settings: Settings,
    private readonly shape: ShapeInfo,
    readonly decodedPerClass: number,
  ) {
    // One optimizer for both, as the reference's.
    this.tensors = [
      { name: 'coefficients', group: 'images' as const, tensor: coefficients },
      { name: 'bases', group: 'images' as const, tensor: bases },
    ];
  }

  decode(): E.Tensor {
    const [c, h, w] = this.shape.imageShape;
    const ds = this.settings.downsample;
    const small = this.coefficients.mm(this.bases).reshape([-1, c, h / ds, w / ds]);
    return ds === 1
      ? small
      : E.nn.interpolate(small, { size: [h, w], mode: 'bilinear', alignCorners: false });
  }
}

export const linba = registerParameterization<Settings>({
  kind: 'linba',
  summary: 'LinBa: images are linear combinations of shared bases with per-image coefficients',
  schema,
  validate(s, o) {
    const [, h, w] = s.imageShape;
    if (h % o.downsample !== 0 || w % o.downsample !== 0)
      throw new ParameterizationError(
        `linba downsample ${o.downsample} does not divide the image size ${h}x${w}`,
      );
    const rows = linbaPerClass(s, o);
    const used = baseFloats(s, o) + s.classes * rows * o.bases;
    if (rows < 1 || used > budgetFloats(s))
      throw new ParameterizationError(
        `linba with ${o.bases} bases (downsample ${o.downsample})${o.perClass ? ` and ${o.perClass} images per class` : ''} needs ${used} floats, over the budget of ${s.classes} x ${s.ipc} images (${budgetFloats(s)} floats): use fewer bases, a larger downsample or fewer images per class`,
      );
  },
  initImagesPerClass: () => 0,
  tensorNames: () => ['coefficients', 'bases'],
  create(s, o, _init, gen) {
    const rows = s.classes * linbaPerClass(s, o);
    const d = imageFloats(s) / (o.downsample * o.downsample);
    const uniform = (shape: number[], bound: number) =>
      E.tidy(() =>
        E.rand(shape, { generator: gen })
          .mul(2 * bound)
          .sub(bound)
          .keep(),
      );
    const coefficients = uniform([rows, o.bases], xavierBound(o.bases, rows)).requiresGrad_();
    const bases = uniform([o.bases, d], xavierBound(d, o.bases)).requiresGrad_();
    return new LinBa(coefficients, bases, o, s, linbaPerClass(s, o));
  },
  restore: (s, o, t) =>
    new LinBa(t.coefficients.requiresGrad_(), t.bases.requiresGrad_(), o, s, linbaPerClass(s, o)),
});
