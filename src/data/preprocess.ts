// Preprocessing from raw pixels in [0, 1] to model-input space, as a
// serializable object: per-channel mean/std normalisation, or regularised ZCA
// whitening of the raw pixels (MTT/KIP/FRePo on CIFAR: MTT's get_dataset drops
// Normalize when --zca is set and fits kornia's ZCAWhitening(eps=0.1) on [0, 1]
// pixels). Distilled sets are stored in model-input space together with this
// object, so evaluation always sees exactly the preprocessing the set was made with.
import * as E from '../engine/index.js';
import { DataError } from './errors.js';

export interface ZcaParams {
  eps: number;
  /** Per-feature mean of the training images the whitening was fitted on, [D]. */
  mean: E.Tensor;
  /** Whitening matrix [D, D] and its inverse. */
  transform: E.Tensor;
  inverse: E.Tensor;
}

/** The JSON part of a preprocessing (the ZCA matrices travel as tensors). */
export interface PreprocessingSpec {
  mean: number[];
  std: number[];
  zca: { eps: number } | null;
}

export class Preprocessing {
  constructor(
    readonly mean: number[],
    readonly std: number[],
    readonly zca: ZcaParams | null = null,
  ) {
    if (mean.length !== std.length || mean.length === 0) {
      throw new DataError(
        `preprocessing needs one mean and one std per channel, got ${mean.length} and ${std.length}`,
      );
    }
    if (std.some((s) => !(s > 0)))
      throw new DataError(`preprocessing std must be positive, got [${std.join(', ')}]`);
  }

  get channels(): number {
    return this.mean.length;
  }

  private stat(values: number[], like: E.Tensor): E.Tensor {
    return E.tensor(values, { dtype: like.dtype }).reshape(1, values.length, 1, 1);
  }

  /** Raw pixels [N, C, H, W] in [0, 1] -> model input. */
  apply(raw: E.Tensor): E.Tensor {
    this.checkChannels(raw);
    return E.tidy(() => {
      const normalised = raw.sub(this.stat(this.mean, raw)).div(this.stat(this.std, raw));
      if (!this.zca) return normalised;
      const flat = normalised.flatten(1).sub(this.zca.mean);
      return flat.matmul(this.zca.transform).reshape(raw.shape);
    });
  }

  /** Model input -> raw pixels (for pictures of distilled sets). */
  invert(x: E.Tensor): E.Tensor {
    this.checkChannels(x);
    return E.tidy(() => {
      let normalised = x;
      if (this.zca) normalised = x.flatten(1).matmul(this.zca.inverse).add(this.zca.mean).reshape(x.shape);
      return normalised.mul(this.stat(this.std, x)).add(this.stat(this.mean, x));
    });
  }

  /**
   * ZCA whitening of the raw training pixels, as MTT computes it: no mean/std normalisation (mean 0,
   * std 1 here), then kornia's ZCAWhitening(eps) fitted on [0, 1] pixels: the unbiased covariance
   * C = U diag(S) U^T and W = U diag(1 / sqrt(S + eps)) U^T, applied as (x - mean) W. eps is not
   * scale-invariant, so fitting on normalised pixels (std ~0.25) would make it act ~16x weaker.
   *
   * @example Preprocessing.zcaWhitening(rawTrainImages, 0.1).apply(rawTestImages)
   */
  static zcaWhitening(rawTrain: E.Tensor, eps = 0.1): Preprocessing {
    const channels = rawTrain.size(1);
    const zca = E.noGrad(() =>
      E.tidy(() => {
        const x = rawTrain.flatten(1).double();
        const mean = x.mean(0);
        const centred = x.sub(mean);
        const cov = centred
          .t()
          .matmul(centred)
          .div(x.size(0) - 1);
        const { eigenvalues, eigenvectors: U } = E.linalg.eigh(cov);
        const s = eigenvalues.clamp(0).add(eps);
        const transform = U.mul(s.rsqrt()).matmul(U.t());
        const inverse = U.mul(s.sqrt()).matmul(U.t());
        return { eps, mean: mean.float(), transform: transform.float(), inverse: inverse.float() };
      }),
    );
    for (const t of [zca.mean, zca.transform, zca.inverse]) t.keep();
    return new Preprocessing(new Array<number>(channels).fill(0), new Array<number>(channels).fill(1), zca);
  }

  toSpec(): PreprocessingSpec {
    return { mean: [...this.mean], std: [...this.std], zca: this.zca ? { eps: this.zca.eps } : null };
  }

  /** Tensors to store beside the spec (empty without ZCA). */
  tensors(): Record<string, E.Tensor> {
    return this.zca
      ? { 'zca.mean': this.zca.mean, 'zca.transform': this.zca.transform, 'zca.inverse': this.zca.inverse }
      : {};
  }

  static fromSpec(spec: PreprocessingSpec, tensors: Record<string, E.Tensor> = {}): Preprocessing {
    if (!spec.zca) return new Preprocessing(spec.mean, spec.std);
    const [mean, transform, inverse] = ['zca.mean', 'zca.transform', 'zca.inverse'].map((k) => {
      const t = tensors[k];
      if (!t) throw new DataError(`preprocessing uses ZCA but the tensor '${k}' is missing`);
      return t;
    });
    return new Preprocessing(spec.mean, spec.std, { eps: spec.zca.eps, mean, transform, inverse });
  }

  /** True when both describe the same transformation. */
  equals(other: Preprocessing, tol = 1e-6): boolean {
    const close = (a: number[], b: number[]) =>
      a.length === b.length && a.every((v, i) => Math.abs(v - b[i]) <= tol);
    if (!close(this.mean, other.mean) || !close(this.std, other.std)) return false;
    if (!this.zca || !other.zca) return this.zca === other.zca;
    return (
      this.zca.eps === other.zca.eps &&
      E.tidy(() => this.zca!.transform.sub(other.zca!.transform).abs().max().item()) <= tol
    );
  }

  describe(): string {
    const f = (v: number[]) => v.map((x) => x.toFixed(4)).join(', ');
    return `mean [${f(this.mean)}], std [${f(this.std)}]${this.zca ? `, ZCA eps ${this.zca.eps}` : ''}`;
  }

  private checkChannels(x: E.Tensor): void {
    if (x.ndim !== 4 || x.size(1) !== this.channels) {
      throw new DataError(
        `preprocessing for ${this.channels}-channel images got a tensor of shape [${x.shape.join(', ')}]`,
      );
    }
  }
}
