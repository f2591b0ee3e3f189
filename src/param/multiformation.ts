// IDC's multi-formation (Kim et al. 2022; snu-mllab/Efficient-Dataset-Condensation, condense.py
// Synthesizer.decode_zoom): each stored image is split into factor x factor tiles of size H/factor,
// and every tile is upsampled (bilinear, align_corners false) to full size: ipc stored images per class
// give ipc * factor^2 training images at the storage of ipc images. Tiles are decoded tile-major
// (tile (0,0) of every stored image of the class, then tile (0,1), ...), as decode_zoom concatenates
// them. Initialisation tiles factor^2 real images, each downsampled to H/factor (nearest, as
// Synthesizer.init's 'mix'), into one stored image: stored image m gets images k*ipc + m, tile k
// row-major. The reference takes the first ipc*factor^2 images of each class in dataset order; ours
// are drawn by the run's init (random real by default, or a coreset).
import { z } from 'zod';
import * as E from '../engine/index.js';
import {
  ParameterizationError,
  registerParameterization,
  type Parameterization,
  type ShapeInfo,
} from './kind.js';

const schema = z
  .object({
    /** Tiles per side of a stored image (1: IDC-I, no multi-formation). */
    factor: z.number().int().positive().default(2),
    /**
     * How the initial real images shrink into tiles: 'nearest' (IDC's Synthesizer.init) or 'bilinear'
     * (IDM's downscale, align_corners false: at factor 2 the mean of each 2x2 block).
     */
    initResize: z.enum(['nearest', 'bilinear']).default('nearest'),
  })
  .strict();
type Settings = z.infer<typeof schema>;

/** Splits [N, C, H, W] into factor^2 tiles (tile-major) and upsamples each to [H, W]. */
export function multiFormationDecode(stored: E.Tensor, factor: number): E.Tensor {
  if (factor === 1) return stored;
  const [, , h, w] = stored.shape;
  const th = h / factor;
  const tw = w / factor;
  const tiles: E.Tensor[] = [];
  for (let i = 0; i < factor; i++)
    for (let j = 0; j < factor; j++) tiles.push(stored.narrow(2, i * th, th).narrow(3, j * tw, tw));
  return E.nn.interpolate(E.cat(tiles, 0), { size: [h, w], mode: 'bilinear', alignCorners: false });
}

/** The inverse of the decode's layout: factor^2 images per stored image, downsampled and tiled. */
export function multiFormationEncode(
  images: E.Tensor,
  factor: number,
  resize: 'nearest' | 'bilinear' = 'nearest',
): E.Tensor {
  if (factor === 1) return images;
  const [n, , h, w] = images.shape;
  const per = n / (factor * factor);
  // Nearest-neighbour as Synthesizer.init's F.interpolate with its default mode; bilinear as IDM's downscale.
  const size: [number, number] = [h / factor, w / factor];
  const small =
    resize === 'nearest'
      ? E.nn.interpolate(images, { size, mode: 'nearest' })
      : E.nn.interpolate(images, { size, mode: 'bilinear', alignCorners: false });
  // Image t * per + i goes to tile t of stored image i (the decode's tile-major order).
  const rows: E.Tensor[] = [];
  for (let i = 0; i < factor; i++) {
    const row: E.Tensor[] = [];
    for (let j = 0; j < factor; j++) row.push(small.narrow(0, (i * factor + j) * per, per));
    rows.push(E.cat(row, 3));
  }
  return E.cat(rows, 2);
}

class MultiFormation implements Parameterization {
  readonly kind = 'idc';
  readonly tensors;
  readonly decodedPerClass: number;

  constructor(
    readonly stored: E.Tensor,
    readonly settings: Settings,
    private readonly shape: ShapeInfo,
  ) {
    this.tensors = [{ name: 'stored', group: 'images' as const, tensor: stored }];
    this.decodedPerClass = shape.ipc * settings.factor ** 2;
  }

  decode(): E.Tensor {
    const { classes, ipc } = this.shape;
    if (this.settings.factor === 1) return this.stored;
    const perClass: E.Tensor[] = [];
    for (let c = 0; c < classes; c++)
      perClass.push(multiFormationDecode(this.stored.narrow(0, c * ipc, ipc), this.settings.factor));
    return E.cat(perClass, 0);
  }
}

export const multiFormation = registerParameterization<Settings>({
  kind: 'idc',
  summary: 'IDC multi-formation: each stored image holds factor^2 training images at 1/factor resolution',
  schema,
  validate({ imageShape: [, h, w] }, { factor }) {
    if (h % factor !== 0 || w % factor !== 0)
      throw new ParameterizationError(
        `idc factor ${factor} does not divide the image size ${h}x${w}: choose a factor that divides both (e.g. ${[1, 2, 4, 7].filter((f) => h % f === 0 && w % f === 0).join(', ')})`,
      );
  },
  initImagesPerClass: ({ ipc }, { factor }) => ipc * factor * factor,
  tensorNames: () => ['stored'],
  create(shape, settings, init) {
    const per = shape.ipc * settings.factor ** 2;
    const stored = E.tidy(() => {
      const parts: E.Tensor[] = [];
      for (let c = 0; c < shape.classes; c++)
        parts.push(multiFormationEncode(init.narrow(0, c * per, per), settings.factor, settings.initResize));
      return E.cat(parts, 0).keep();
    });
    return new MultiFormation(stored.requiresGrad_(), settings, shape);
  },
  restore: (shape, settings, tensors) => new MultiFormation(tensors.stored.requiresGrad_(), settings, shape),
});
