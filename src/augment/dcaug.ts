// DC's evaluation augmentation (reference DatasetCondensation utils.py: augment() with the
// parameters of get_daparam()): each image of a training batch gets ONE op drawn uniformly
// from the strategy, with its own parameters:
//   crop    pad by `crop` pixels with the batch's channel means, take an HxW window at a
//           random offset in [0, 2 crop) per axis
//   scale   resize (nearest) to int(U(1 - s, 1 + s) H) x int(U(1 - s, 1 + s) H), paste centred on
//           zeros of the larger size, take the centre HxW
//   rotate  scipy.ndimage.rotate by an integer angle in [-rotate, rotate) degrees: cubic B-spline
//           interpolation (mirror-boundary prefilter, 'constant' mode, reshape=True) with the mean
//           of the channel means outside, then the centre HxW
//   noise   add noise * N(0, 1)
// Not differentiable (it trains evaluation networks only). DC's MNIST protocol uses
// 'crop_scale_rotate'; batch-norm evaluation models use 'crop_noise'. All randomness comes from
// the Generator; apply() takes explicit draws so the ops can be checked against the reference.
import * as E from '../engine/index.js';
import { DsaError } from './dsa.js';

export const DC_OPS = ['crop', 'scale', 'rotate', 'noise'] as const;
export type DcOp = (typeof DC_OPS)[number];

export interface DcAugmentOptions {
  /** Crop padding in pixels. */
  crop: number;
  /** Scale factors in [1 - scale, 1 + scale). */
  scale: number;
  /** Rotation angles in [-rotate, rotate) degrees (integers). */
  rotate: number;
  /** Standard deviation of the additive noise. */
  noise: number;
}

/** get_daparam()'s values. */
export const DC_AUGMENT_DEFAULTS: DcAugmentOptions = { crop: 4, scale: 0.2, rotate: 45, noise: 0.001 };

/**
 * One image's draw. crop: a, b = row and column offsets of the window; scale: a, b = the height
 * and width factors; rotate: a = the angle in degrees; noise: uses the noise tensor given to apply().
 */
export interface DcDraw {
  op: DcOp;
  a: number;
  b: number;
}

/** Plane of one channel of one image, row-major. */
type Plane = Float64Array;

export class DcAugment {
  readonly ops: DcOp[];
  readonly options: DcAugmentOptions;

  constructor(
    readonly strategy: string,
    options: Partial<DcAugmentOptions> = {},
  ) {
    this.options = { ...DC_AUGMENT_DEFAULTS, ...options };
    this.ops = strategy.split('_').map((op) => {
      if (!(DC_OPS as readonly string[]).includes(op))
        throw new DsaError(
          `unknown DC augmentation '${op}' in '${strategy}' (valid: ${DC_OPS.join(', ')}, joined by '_')`,
        );
      return op as DcOp;
    });
  }

  /** One draw per image, as augment() makes them (one op per image, uniform over the strategy). */
  sample(n: number, gen: E.Generator): DcDraw[] {
    return E.tidy(() => {
      const op = E.randint(0, this.ops.length, [n], { generator: gen }).toNumbers();
      const u = E.rand([n, 2], { dtype: 'float64', generator: gen }).toNumbers();
      const { crop, scale, rotate } = this.options;
      return op.map((k, i) => {
        const [ua, ub] = [u[2 * i], u[2 * i + 1]];
        switch (this.ops[k]) {
          case 'crop':
            return { op: 'crop', a: Math.floor(ua * 2 * crop), b: Math.floor(ub * 2 * crop) };
          case 'scale':
            return { op: 'scale', a: 1 - scale + 2 * scale * ua, b: 1 - scale + 2 * scale * ub };
          case 'rotate':
            return { op: 'rotate', a: Math.floor(ua * 2 * rotate) - rotate, b: 0 };
          default:
            return { op: 'noise', a: 0, b: 0 };
        }
      });
    });
  }

  /** A training batch augmented with fresh draws from `gen`. */
  augmentBatch(x: E.Tensor, gen: E.Generator): E.Tensor {
    const draws = this.sample(x.size(0), gen);
    if (!this.ops.includes('noise')) return this.apply(x, draws);
    return E.tidy(() => this.apply(x, draws, E.randn(x.shape, { generator: gen })));
  }

  /**
   * Applies one draw per image. `noise` (standard normal, x's shape) is needed when a draw is
   * 'noise'. Returns a new float32 tensor; x is not modified.
   */
  apply(x: E.Tensor, draws: DcDraw[], noise?: E.Tensor): E.Tensor {
    if (x.ndim !== 4 || draws.length !== x.size(0))
      throw new DsaError(
        `${draws.length} DC augmentation draws for a batch of shape [${x.shape.join(', ')}]`,
      );
    const [n, c, h, w] = x.shape;
    return E.tidy(() => {
      const src = x.float().contiguous();
      const data = src.toArray() as Float32Array;
      // The channel means of the whole batch, taken before any image changes (crop's fill, rotate's cval).
      const means = src.mean([0, 2, 3]).toNumbers();
      const noiseData = draws.some((d) => d.op === 'noise')
        ? (() => {
            if (!noise) throw new DsaError("a 'noise' draw needs the noise tensor");
            return noise.float().contiguous().toArray() as Float32Array;
          })()
        : null;
      const out = new Float32Array(data.length);
      const plane = h * w;
      const cval = means.reduce((a, b) => a + b, 0) / means.length;
      for (let i = 0; i < n; i++) {
        const d = draws[i];
        for (let ch = 0; ch < c; ch++) {
          const at = (i * c + ch) * plane;
          const img = Float64Array.from(data.subarray(at, at + plane));
          let res: Plane;
          if (d.op === 'crop') res = this.crop(img, h, w, d.a, d.b, Math.fround(means[ch]));
          else if (d.op === 'scale') res = scaleNearest(img, h, w, d.a, d.b);
          else if (d.op === 'rotate') res = rotateSpline(img, h, w, d.a, cval);
          else res = img.map((v, k) => v + this.options.noise * noiseData![at + k]);
          out.set(res, at);
        }
      }
      return E.tensor(out, { shape: [n, c, h, w] });
    });
  }

  private crop(img: Plane, h: number, w: number, r: number, col: number, fill: number): Plane {
    const p = this.options.crop;
    const out = new Float64Array(h * w);
    for (let y = 0; y < h; y++) {
      const sy = y + r - p;
      for (let x = 0; x < w; x++) {
        const sx = x + col - p;
        out[y * w + x] = sy >= 0 && sy < h && sx >= 0 && sx < w ? img[sy * w + sx] : fill;
      }
    }
    return out;
  }
}

/** torch's 'nearest' source index (float32 scale, as upsample_nearest2d computes it). */
function nearestIndex(dst: number, inSize: number, outSize: number): number {
  if (outSize === inSize) return dst;
  if (outSize === 2 * inSize) return dst >> 1;
  const scale = Math.fround(inSize / outSize);
  return Math.min(Math.floor(Math.fround(dst * scale)), inSize - 1);
}

/** scalefun(): both factors multiply the height (as the reference writes it). */
function scaleNearest(img: Plane, h: number, w: number, fa: number, fb: number): Plane {
  const sh = Math.trunc(fa * h);
  const sw = Math.trunc(fb * h);
  const m = Math.max(sh, sw, h, w);
  const r0 = Math.trunc((m - sh) / 2);
  const c0 = Math.trunc((m - sw) / 2);
  const r1 = Math.trunc((m - h) / 2);
  const c1 = Math.trunc((m - w) / 2);
  const out = new Float64Array(h * w);
  for (let y = 0; y < h; y++) {
    const ty = y + r1 - r0; // row in the resized image
    if (ty < 0 || ty >= sh) continue;
    const sy = nearestIndex(ty, h, sh);
    for (let x = 0; x < w; x++) {
      const tx = x + c1 - c0;
      if (tx < 0 || tx >= sw) continue;
      out[y * w + x] = img[sy * w + nearestIndex(tx, w, sw)];
    }
  }
  return out;
}

// Cubic B-spline interpolation as scipy.ndimage computes it for order 3, mode 'constant'.
const POLE = Math.sqrt(3) - 2;

/** In-place cubic B-spline prefilter of a line with mirror-symmetric boundaries (scipy's choice for 'constant'). */
function prefilterLine(c: Float64Array, start: number, stride: number, n: number): void {
  if (n < 2) return;
  const z = POLE;
  const at = (k: number) => start + k * stride;
  for (let k = 0; k < n; k++) c[at(k)] *= (1 - z) * (1 - 1 / z);
  // Causal initialisation for a mirror-extended line.
  const zn = z ** (n - 1);
  let sum = c[at(0)] + zn * c[at(n - 1)];
  let zk = z;
  let z2 = (zn * zn) / z;
  for (let k = 1; k < n - 1; k++) {
    sum += (zk + z2) * c[at(k)];
    zk *= z;
    z2 /= z;
  }
  c[at(0)] = sum / (1 - zn * zn);
  for (let k = 1; k < n; k++) c[at(k)] += z * c[at(k - 1)];
  c[at(n - 1)] = (z / (z * z - 1)) * (c[at(n - 1)] + z * c[at(n - 2)]);
  for (let k = n - 2; k >= 0; k--) c[at(k)] = z * (c[at(k + 1)] - c[at(k)]);
}

function bspline3(t: number): number {
  const a = Math.abs(t);
  if (a < 1) return 2 / 3 - a * a + (a * a * a) / 2;
  if (a < 2) return (2 - a) ** 3 / 6;
  return 0;
}

function mirrorIndex(i: number, n: number): number {
  if (n === 1) return 0;
  const period = 2 * n - 2;
  const k = Math.abs(i) % period;
  return k >= n ? period - k : k;
}

/** cos/sin of an angle in degrees, exact at multiples of 90 (as scipy.special.cosdg/sindg). */
function cosSinDeg(deg: number): [number, number] {
  const r = (deg * Math.PI) / 180;
  const exact = (v: number) => (Math.abs(v) < 1e-15 ? 0 : v);
  return [exact(Math.cos(r)), exact(Math.sin(r))];
}

/** rotatefun(): scipy.ndimage.rotate(img, angle, reshape=True, order=3, mode='constant', cval), centre crop. */
function rotateSpline(img: Plane, h: number, w: number, angle: number, cval: number): Plane {
  const [cs, sn] = cosSinDeg(angle);
  // Output plane of the rotated bounds (rot = [[c, s], [-s, c]] applied to the corners).
  const ys = [0, sn * w, cs * h, cs * h + sn * w];
  const xs = [0, cs * w, -sn * h, -sn * h + cs * w];
  const oh = Math.trunc(Math.max(...ys) - Math.min(...ys) + 0.5);
  const ow = Math.trunc(Math.max(...xs) - Math.min(...xs) + 0.5);
  const oy = (oh - 1) / 2;
  const ox = (ow - 1) / 2;
  const offY = (h - 1) / 2 - (cs * oy + sn * ox);
  const offX = (w - 1) / 2 - (-sn * oy + cs * ox);
  const coef = Float64Array.from(img);
  for (let x = 0; x < w; x++) prefilterLine(coef, x, w, h);
  for (let y = 0; y < h; y++) prefilterLine(coef, y * w, 1, w);
  const r1 = Math.trunc((oh - h) / 2);
  const c1 = Math.trunc((ow - w) / 2);
  const out = new Float64Array(h * w);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const py = y + r1;
      const px = x + c1;
      const iy = cs * py + sn * px + offY;
      const ix = -sn * py + cs * px + offX;
      if (iy < 0 || iy > h - 1 || ix < 0 || ix > w - 1) {
        out[y * w + x] = cval;
        continue;
      }
      const y0 = Math.floor(iy) - 1;
      const x0 = Math.floor(ix) - 1;
      let v = 0;
      for (let a = 0; a < 4; a++) {
        const wy = bspline3(iy - (y0 + a));
        const row = mirrorIndex(y0 + a, h) * w;
        for (let b = 0; b < 4; b++) v += wy * bspline3(ix - (x0 + b)) * coef[row + mirrorIndex(x0 + b, w)];
      }
      out[y * w + x] = Math.fround(v);
    }
  }
  return out;
}
