// Differentiable Siamese Augmentation (Zhao & Bilen 2021), as the reference
// DiffAugment in mode 'S': each draw picks ONE group of the strategy (color =
// brightness, saturation, contrast; the others one op each) and its parameters.
// A draw is made per segment (e.g. per class) and can be applied to several
// batches (Siamese: the real and the synthetic batch of a class share it).
// Every op is differentiable with respect to the pixels; all randomness comes
// from the Generator passed in.
import * as E from '../engine/index.js';

export const GROUPS = ['color', 'crop', 'cutout', 'flip', 'scale', 'rotate'] as const;
export type Group = (typeof GROUPS)[number];

export interface DsaOptions {
  /** Groups joined by '_', e.g. 'color_crop_cutout_flip_scale_rotate'. */
  strategy: string;
  brightness: number;
  saturation: number;
  contrast: number;
  cropPad: number;
  cutout: number;
  flipProb: number;
  scale: number;
  rotateDegrees: number;
}

export const DSA_DEFAULTS: DsaOptions = {
  strategy: 'color_crop_cutout_flip_scale_rotate',
  brightness: 1.0,
  saturation: 2.0,
  contrast: 0.5,
  cropPad: 0.125,
  cutout: 0.5,
  flipProb: 0.5,
  scale: 1.2,
  rotateDegrees: 15,
};

/** Built-in datasets whose reference strategy flips: natural images (flipping digits makes other digits). */
const FLIPPED = ['fashion-mnist', 'cifar10', 'cifar100', 'tinyimagenet'];

/**
 * The reference strategy for a dataset: flips only for the built-in natural-image sets. Custom
 * datasets (file:..., folder:...) get none, since a flip is wrong for digits and text; ask for one
 * with methodConfig.dsaStrategy / evalAugment 'color_crop_cutout_flip_scale_rotate'.
 */
export function defaultStrategy(datasetName: string): string {
  return FLIPPED.includes(datasetName) ? DSA_DEFAULTS.strategy : 'color_crop_cutout_scale_rotate';
}

/** Parameters of one segment's draw; only those of its group are used. */
export interface SegmentParams {
  group: Group;
  u: number[]; // uniforms in [0, 1) consumed by the group's op
}

export class DsaError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DsaError';
  }
}

export class DSA {
  readonly options: DsaOptions;
  readonly groups: Group[];

  constructor(options: Partial<DsaOptions> = {}) {
    this.options = { ...DSA_DEFAULTS, ...options };
    this.groups = this.options.strategy.split('_').map((g) => {
      if (!(GROUPS as readonly string[]).includes(g)) {
        throw new DsaError(
          `unknown augmentation '${g}' in strategy '${this.options.strategy}' (valid: ${GROUPS.join(', ')})`,
        );
      }
      return g as Group;
    });
  }

  /**
   * One draw per segment. With `sharedGroup` every segment uses the same group (the
   * reference's non-Siamese call on a training batch: one group, per-image parameters).
   */
  sample(segments: number, gen: E.Generator, o: { sharedGroup?: boolean } = {}): SegmentParams[] {
    return E.tidy(() => {
      // 3 uniforms cover every op (color uses 3, scale/crop/cutout 2, flip/rotate 1).
      const u = E.rand([segments, 3], { dtype: 'float64', generator: gen }).toNumbers();
      const g = E.randint(0, this.groups.length, [o.sharedGroup ? 1 : segments], {
        generator: gen,
      }).toNumbers();
      return Array.from({ length: segments }, (_, i) => ({
        group: this.groups[o.sharedGroup ? g[0] : g[i]],
        u: u.slice(3 * i, 3 * i + 3),
      }));
    });
  }

  /**
   * Applies the draws to x, whose images form consecutive segments of the given sizes
   * (segment i uses draw i). Returns a new tensor; x is not modified.
   */
  apply(x: E.Tensor, draws: SegmentParams[], segmentSizes: readonly number[]): E.Tensor {
    if (draws.length !== segmentSizes.length)
      throw new DsaError(`${draws.length} draws for ${segmentSizes.length} segments`);
    const total = segmentSizes.reduce((a, b) => a + b, 0);
    if (x.ndim !== 4 || total !== x.size(0))
      throw new DsaError(`segments cover ${total} images, the batch has shape [${x.shape.join(', ')}]`);
    return E.tidy(() => {
      // Image indices and per-image parameters of each group present.
      const byGroup = new Map<Group, { index: number[]; u: number[][] }>();
      let start = 0;
      draws.forEach((d, s) => {
        const entry = byGroup.get(d.group) ?? { index: [], u: [] };
        for (let k = 0; k < segmentSizes[s]; k++) {
          entry.index.push(start + k);
          entry.u.push(d.u);
        }
        byGroup.set(d.group, entry);
        start += segmentSizes[s];
      });
      if (byGroup.size === 1) {
        const [[group, { u }]] = [...byGroup];
        return this.op(group, x, u);
      }
      const pieces: E.Tensor[] = [];
      const order: number[] = [];
      for (const [group, { index, u }] of byGroup) {
        pieces.push(this.op(group, x.indexSelect(0, E.tensor(Int32Array.from(index)).long()), u));
        order.push(...index);
      }
      const inverse = new Int32Array(order.length);
      order.forEach((img, pos) => (inverse[img] = pos));
      return E.cat(pieces, 0).indexSelect(0, E.tensor(inverse).long());
    });
  }

  /** Convenience for one batch augmented on its own (no Siamese sharing): one group, per-image parameters. */
  augmentBatch(x: E.Tensor, gen: E.Generator): E.Tensor {
    const n = x.size(0);
    return this.apply(x, this.sample(n, gen, { sharedGroup: true }), new Array<number>(n).fill(1));
  }

  private op(group: Group, x: E.Tensor, u: number[][]): E.Tensor {
    const o = this.options;
    const col = (k: number, f: (v: number) => number) =>
      E.tensor(
        Float32Array.from(u, (r) => f(r[k])),
        { shape: [u.length, 1, 1, 1] },
      ).to(x.dtype);
    const [, , h, w] = x.shape;
    switch (group) {
      case 'color': {
        const bright = x.add(col(0, (v) => (v - 0.5) * o.brightness));
        const m1 = bright.mean(1, true);
        const sat = bright
          .sub(m1)
          .mul(col(1, (v) => v * o.saturation))
          .add(m1);
        const m2 = sat.mean([1, 2, 3], true);
        return sat
          .sub(m2)
          .mul(col(2, (v) => v + o.contrast))
          .add(m2);
      }
      case 'flip':
        return E.where(col(0, (v) => (v < o.flipProb ? 1 : 0)).gt(0.5), x.flip(3), x);
      case 'crop': {
        // Translate by whole pixels, zero fill: gather from a 1-pixel zero-padded copy
        // with indices clamped onto the padding (the reference's construction).
        const sx = Math.floor(h * o.cropPad + 0.5);
        const sy = Math.floor(w * o.cropPad + 0.5);
        const tx = u.map((r) => Math.min(sx, Math.floor(r[0] * (2 * sx + 1)) - sx));
        const ty = u.map((r) => Math.min(sy, Math.floor(r[1] * (2 * sy + 1)) - sy));
        const n = x.size(0);
        const c = x.size(1);
        const padded = E.nn.pad(x, [1, 1, 1, 1]);
        const rows = Int32Array.from({ length: n * h }, (_, k) =>
          Math.min(h + 1, Math.max(0, (k % h) + tx[Math.floor(k / h)] + 1)),
        );
        const cols = Int32Array.from({ length: n * w }, (_, k) =>
          Math.min(w + 1, Math.max(0, (k % w) + ty[Math.floor(k / w)] + 1)),
        );
        const rowIndex = E.tensor(rows, { shape: [n, 1, h, 1] })
          .long()
          .expand(n, c, h, w + 2);
        const colIndex = E.tensor(cols, { shape: [n, 1, 1, w] })
          .long()
          .expand(n, c, h, w);
        return padded.gather(2, rowIndex).gather(3, colIndex);
      }
      case 'cutout': {
        const sh = Math.floor(h * o.cutout + 0.5);
        const sw = Math.floor(w * o.cutout + 0.5);
        const n = x.size(0);
        const mask = new Float32Array(n * h * w).fill(1);
        u.forEach((r, i) => {
          const ox = Math.floor(r[0] * (h + (1 - (sh % 2)))) - Math.floor(sh / 2);
          const oy = Math.floor(r[1] * (w + (1 - (sw % 2)))) - Math.floor(sw / 2);
          for (let a = Math.max(0, ox); a <= Math.min(h - 1, ox + sh - 1); a++) {
            for (let b = Math.max(0, oy); b <= Math.min(w - 1, oy + sw - 1); b++)
              mask[i * h * w + a * w + b] = 0;
          }
        });
        return x.mul(E.tensor(mask, { shape: [n, 1, h, w] }).to(x.dtype));
      }
      case 'scale':
      case 'rotate': {
        // align_corners false, as DatasetCondensation's DiffAugment; mtt-distillation's and tesla's
        // copies pass true. For these maps (no translation) both sample output pixel i at
        // A (i - (n-1)/2) + (n-1)/2 when height = width, so the two agree on square images
        // (test/reference/dsa.test.ts compares with both; every registered dataset is square; a
        // non-square image would rotate as DatasetCondensation's, not as mtt-distillation's).
        const theta = new Float64Array(u.length * 6);
        u.forEach((r, i) => {
          if (group === 'scale') {
            const lo = 1 / o.scale;
            theta.set([r[0] * (o.scale - lo) + lo, 0, 0, 0, r[1] * (o.scale - lo) + lo, 0], 6 * i);
          } else {
            const a = (r[0] - 0.5) * 2 * (o.rotateDegrees / 180) * Math.PI;
            theta.set([Math.cos(a), -Math.sin(a), 0, Math.sin(a), Math.cos(a), 0], 6 * i);
          }
        });
        const grid = E.nn.affineGrid(
          E.tensor(theta, { shape: [u.length, 2, 3] }).to(x.dtype),
          x.shape,
          false,
        );
        return E.nn.gridSample(x, grid, { alignCorners: false });
      }
    }
  }
}
