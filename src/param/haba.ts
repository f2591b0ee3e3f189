// HaBa (Liu et al. 2022, "Dataset Distillation via Factorization"; Huage001/DatasetFactorization,
// utils.py StyleTranslator): per-class bases (full-size images) and a few hallucinators shared by all
// classes; every base x hallucinator pair is a training image (decoded class by class, hallucinator-
// major within a class, labelled with the base's class). A hallucinator is a conv k x k without
// padding (C -> C), a per-element affine (scale 1, shift 0 at init) on its [C, H-k+1, W-k+1] output,
// and a transposed conv back to [C, H, W]; no nonlinearity, PyTorch's default conv init. The budget
// counts bases and hallucinator weights (the reference counts only bases): by default the bases per
// class are as many as the budget of classes x ipc images leaves after the hallucinators.
import { z } from 'zod';
import * as E from '../engine/index.js';
import { budgetFloats, imageFloats } from './budget.js';
import {
  ParameterizationError,
  registerParameterization,
  type NamedTensor,
  type Parameterization,
  type ShapeInfo,
} from './kind.js';

const schema = z
  .object({
    hallucinators: z.number().int().positive().default(5),
    kernel: z.number().int().positive().default(3),
    /** Bases per class; default: as many as the budget holds after the hallucinators. */
    bases: z.number().int().positive().optional(),
  })
  .strict();
type Settings = z.infer<typeof schema>;

/** Floats of one hallucinator: two convs (weights + biases) and the affine's scale and shift. */
function hallucinatorFloats(s: ShapeInfo, o: Settings): number {
  const [c, h, w] = s.imageShape;
  const conv = c * c * o.kernel * o.kernel + c;
  return 2 * conv + 2 * c * (h - o.kernel + 1) * (w - o.kernel + 1);
}

export function habaBases(s: ShapeInfo, o: Settings): number {
  const left = budgetFloats(s) - o.hallucinators * hallucinatorFloats(s, o);
  return o.bases ?? Math.floor(left / (s.classes * imageFloats(s)));
}

const PARTS = ['encWeight', 'encBias', 'scale', 'shift', 'decWeight', 'decBias'] as const;

class HaBa implements Parameterization {
  readonly kind = 'haba';
  readonly tensors: NamedTensor[];
  readonly decodedPerClass: number;

  constructor(
    readonly bases: E.Tensor,
    /** hallucinators[j][part] */
    readonly hallucinators: Record<(typeof PARTS)[number], E.Tensor>[],
    readonly settings: Settings,
    private readonly shape: ShapeInfo,
  ) {
    this.tensors = [
      { name: 'bases', group: 'images', tensor: bases },
      ...hallucinators.flatMap((h, j) =>
        PARTS.map((p) => ({ name: `h${j}.${p}`, group: 'decoder' as const, tensor: h[p] })),
      ),
    ];
    this.decodedPerClass = habaBases(shape, settings) * hallucinators.length;
  }

  /** Hallucinator j applied to images [N, C, H, W]. */
  hallucinate(j: number, x: E.Tensor): E.Tensor {
    const h = this.hallucinators[j];
    const mid = E.nn.conv2d(x, h.encWeight, h.encBias).mul(h.scale).add(h.shift);
    return E.nn.convTranspose2d(mid, h.decWeight, h.decBias);
  }

  decode(): E.Tensor {
    const { classes, imageShape } = this.shape;
    const nb = this.bases.size(0) / classes;
    const outs = this.hallucinators.map((_, j) =>
      this.hallucinate(j, this.bases).reshape([classes, 1, nb, ...imageShape]),
    );
    return E.cat(outs, 1).reshape([-1, ...imageShape]);
  }
}

function newHallucinator(
  s: ShapeInfo,
  o: Settings,
  gen: E.Generator,
): Record<(typeof PARTS)[number], E.Tensor> {
  const [c, h, w] = s.imageShape;
  const k = o.kernel;
  // PyTorch's default conv init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases.
  const bound = 1 / Math.sqrt(c * k * k);
  const u = (shape: number[]) =>
    E.tidy(() =>
      E.rand(shape, { generator: gen })
        .mul(2 * bound)
        .sub(bound)
        .keep(),
    );
  const mid = [1, c, h - k + 1, w - k + 1];
  return {
    encWeight: u([c, c, k, k]),
    encBias: u([c]),
    scale: E.ones(mid).keep(),
    shift: E.zeros(mid).keep(),
    decWeight: u([c, c, k, k]),
    decBias: u([c]),
  };
}

function leaves(h: Record<(typeof PARTS)[number], E.Tensor>) {
  for (const p of PARTS) h[p].requiresGrad_();
  return h;
}

export const haba = registerParameterization<Settings>({
  kind: 'haba',
  summary: 'HaBa: per-class bases x shared hallucinator networks; every pair is a training image',
  schema,
  validate(s, o) {
    const [, h, w] = s.imageShape;
    if (o.kernel >= h || o.kernel >= w)
      throw new ParameterizationError(`haba kernel ${o.kernel} is not smaller than the image size ${h}x${w}`);
    const nb = habaBases(s, o);
    const used = s.classes * nb * imageFloats(s) + o.hallucinators * hallucinatorFloats(s, o);
    if (nb < 1 || used > budgetFloats(s))
      throw new ParameterizationError(
        `haba with ${o.hallucinators} hallucinators (${hallucinatorFloats(s, o)} floats each)${o.bases ? ` and ${o.bases} bases per class` : ''} does not fit the budget of ${s.classes} x ${s.ipc} images (${budgetFloats(s)} floats; needs ${Math.max(used, s.classes * imageFloats(s) + o.hallucinators * hallucinatorFloats(s, o))}): use fewer hallucinators or bases, or a larger ipc`,
      );
  },
  initImagesPerClass: (s, o) => habaBases(s, o),
  tensorNames: (_s, o) => [
    'bases',
    ...Array.from({ length: o.hallucinators }, (_, j) => PARTS.map((p) => `h${j}.${p}`)).flat(),
  ],
  create(s, o, init, gen) {
    const hs = Array.from({ length: o.hallucinators }, () => leaves(newHallucinator(s, o, gen)));
    // `init` is borrowed (the caller disposes it): the bases are a copy.
    return new HaBa(init.clone().keep().requiresGrad_(), hs, o, s);
  },
  restore(s, o, t) {
    const hs = Array.from({ length: o.hallucinators }, (_, j) =>
      leaves(
        Object.fromEntries(PARTS.map((p) => [p, t[`h${j}.${p}`]])) as Record<
          (typeof PARTS)[number],
          E.Tensor
        >,
      ),
    );
    return new HaBa(t.bases.requiresGrad_(), hs, o, s);
  },
});
