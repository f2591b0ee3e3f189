// The synthetic set: learnable tensors behind a Parameterization, and labels.
// decode() is differentiable and returns model-input images and labels; methods
// only ever see decode()'s output, so factorised parameterizations (IDC
// multi-formation, HaBa, LinBa) plug in without touching the methods.
import * as E from '../engine/index.js';
import type { Dataset } from '../data/dataset.js';
import { disposeFeatureNet, selectCoreset, selectionNetwork, type CoresetMethod } from '../coreset/index.js';

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

/**
 * How the stored label tensor reads: class indices, class probabilities, or logits whose softmax
 * gives the probabilities (learnable soft labels stay on the simplex, as DATM learns them).
 */
export type LabelForm = 'hard' | 'soft' | 'logits';

export class SyntheticSet {
  /** A learned training learning rate (MTT/TESLA), stored in the artifact and used by evaluation. */
  lr: E.Tensor | null = null;
  private form: LabelForm;

  constructor(
    readonly parameterization: Parameterization,
    /** The stored labels: int64 [M] (hard), or float [M, classes] probabilities or logits (see labelForm). */
    public labels: E.Tensor,
    readonly ipc: number,
    readonly numClasses: number,
    labelForm?: LabelForm,
  ) {
    this.form = labelForm ?? (labels.dtype === 'int64' ? 'hard' : 'soft');
  }

  get labelForm(): LabelForm {
    return this.form;
  }

  /** Replaces the labels (e.g. TESLA's teacher labels, learnable logits); the set owns the new tensor. */
  setLabels(labels: E.Tensor, form: Exclude<LabelForm, 'hard'>): void {
    if (labels.ndim !== 2 || labels.size(0) !== this.labels.size(0) || labels.size(1) !== this.numClasses)
      throw new Error(
        `setLabels: expected [${this.labels.size(0)}, ${this.numClasses}] soft labels, got [${labels.shape.join(', ')}]`,
      );
    this.labels.dispose();
    this.labels = labels;
    this.form = form;
  }

  /** Sets the learned learning rate (a scalar leaf the method updates). */
  setLr(lr: E.Tensor): void {
    this.lr?.dispose();
    this.lr = lr;
  }

  /**
   * The tensors the run's optimizer updates: the parameterization's. Label logits and a learned lr
   * have learning rates orders of magnitude apart from the images', so the methods that learn them
   * update them with optimizer state of their own (MTT/TESLA).
   */
  get learnable(): E.Tensor[] {
    return this.parameterization.tensors;
  }

  /** Images in model-input space and labels (class indices or probabilities), differentiable. */
  decode(): { images: E.Tensor; labels: E.Tensor } {
    const labels = this.form === 'logits' ? E.nn.softmax(this.labels, 1) : this.labels;
    return { images: this.parameterization.decode(), labels };
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
      // Coreset inits select with the (cached) DeepCore selection network of seed 0, not from the run's stream.
      const feature = init === 'real' || init === 'random' ? undefined : selectionNetwork(dataset, 0);
      const indices = selectCoreset(init === 'real' ? 'random' : init, dataset, ipc, gen, feature);
      if (feature) disposeFeatureNet(feature);
      const picked = dataset.gather(indices);
      picked.labels.dispose();
      images = picked.images;
    }
    return new SyntheticSet(new PixelParameterization(images.keep().requiresGrad_()), labels, ipc, k);
  }
}
