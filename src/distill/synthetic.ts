// The synthetic set: learnable tensors behind a Parameterization, and labels.
// decode() is differentiable and returns model-input images and labels; methods
// only ever see decode()'s output, so factorised parameterizations (IDC
// multi-formation, HaBa, LinBa) plug in without touching the methods.
import * as E from '../engine/index.js';
import type { Dataset } from '../data/dataset.js';
import { selectCoreset, trainFeatureNet, type CoresetMethod } from '../coreset/index.js';

export type InitKind = 'noise' | 'real' | CoresetMethod;

/** How the learnable tensors map to images. Pixels: the images themselves. */
export interface Parameterization {
  readonly name: string;
  /** The learnable tensors (leaves with requiresGrad). */
  readonly tensors: E.Tensor[];
  /** Images [M, C, H, W] in model-input space, differentiable w.r.t. `tensors`. */
  decode(): E.Tensor;
}

export class PixelParameterization implements Parameterization {
  readonly name = 'pixels';
  readonly tensors: E.Tensor[];

  constructor(readonly images: E.Tensor) {
    this.tensors = [images];
  }

  decode(): E.Tensor {
    return this.images;
  }
}

export class SyntheticSet {
  /** A learned training learning rate (MTT/TESLA), stored in the artifact and used by evaluation. */
  lr: E.Tensor | null = null;

  constructor(
    readonly parameterization: Parameterization,
    /** int64 [M] class indices (hard) or float [M, classes] (soft; learnable when requiresGrad). */
    public labels: E.Tensor,
    readonly ipc: number,
    readonly numClasses: number,
  ) {}

  /** Replaces the labels (e.g. TESLA's soft teacher labels); the set owns the new tensor. */
  setLabels(labels: E.Tensor): void {
    if (labels.size(0) !== this.labels.size(0))
      throw new Error(`setLabels: ${labels.size(0)} labels for ${this.labels.size(0)} images`);
    this.labels.dispose();
    this.labels = labels;
  }

  /** Sets the learned learning rate (a scalar leaf the method updates). */
  setLr(lr: E.Tensor): void {
    this.lr?.dispose();
    this.lr = lr;
  }

  /** Every learnable tensor: the parameterization's and, for learnable soft labels, the labels. */
  get learnable(): E.Tensor[] {
    return this.labels.requiresGrad
      ? [...this.parameterization.tensors, this.labels]
      : this.parameterization.tensors;
  }

  decode(): { images: E.Tensor; labels: E.Tensor } {
    return { images: this.parameterization.decode(), labels: this.labels };
  }

  /** Images of class c (rows c*ipc .. (c+1)*ipc - 1 of decode()). */
  static classSlice(images: E.Tensor, c: number, ipc: number): E.Tensor {
    return images.narrow(0, c * ipc, ipc);
  }

  /**
   * A pixel-parameterised set with hard labels (classes in order, ipc each),
   * initialised from Gaussian noise, random real images, or a coreset.
   */
  static create(dataset: Dataset, ipc: number, init: InitKind, gen: E.Generator): SyntheticSet {
    const k = dataset.numClasses;
    if (ipc > dataset.smallestClassSize && init !== 'noise') {
      throw new Error(
        `ipc ${ipc} is larger than the smallest class of ${dataset.name} (${dataset.smallestClassSize} images)`,
      );
    }
    const labels = E.tidy(() => E.arange(k).unsqueeze(1).expand(k, ipc).flatten().keep());
    let images: E.Tensor;
    if (init === 'noise') {
      images = E.randn([k * ipc, ...dataset.imageShape], { generator: gen });
    } else {
      const feature =
        init === 'real' || init === 'random' ? undefined : trainFeatureNet(dataset, gen, { epochs: 1 });
      const indices = selectCoreset(init === 'real' ? 'random' : init, dataset, ipc, gen, feature);
      if (feature)
        for (const t of [...feature.state.params.values(), ...feature.state.buffers.values()]) t.dispose();
      const picked = dataset.gather(indices);
      picked.labels.dispose();
      images = picked.images;
    }
    return new SyntheticSet(new PixelParameterization(images.keep().requiresGrad_()), labels, ipc, k);
  }
}
