// The synthetic set as a self-contained parameter object (FRePo's ProtoHolder): it owns its
// parameterization (pixels, IDC multi-formation, LinBa, HaBa), its labels (hard, fixed soft, or
// learnable logits) and an optional learned training learning rate; it lists its learnable tensors
// by optimizer group, and saves and restores all of its state itself. Methods only ever see
// decode()'s class-ordered images and labels, so a parameterization plugs in without touching them.
import { z } from 'zod';
import { centredOneHot } from '../kernels/index.js';
import * as E from '../engine/index.js';
import type { Dataset } from '../data/dataset.js';
import { disposeFeatureNet, selectCoreset, selectionNetwork, type CoresetMethod } from '../coreset/index.js';
import { targetTrainSet, type TargetLoss, type TrainSet } from '../eval/index.js';
import {
  parameterizationConfigSchema,
  resolveParameterization,
  restoreParameterization,
  storageInfo,
  storedFloats,
  type StorageInfo,
  type Parameterization,
  type ParameterizationConfig,
  type ShapeInfo,
} from '../param/index.js';

export type InitKind = 'noise' | 'real' | CoresetMethod;

/** Optimizer groups of the learnable tensors (each with its own optimizer settings). */
export const GROUPS = ['images', 'decoder', 'labels', 'lr'] as const;
export type Group = (typeof GROUPS)[number];

/**
 * How the stored label tensor reads: class indices, class probabilities, or learnable logits whose
 * softmax gives the probabilities (learnable soft labels stay on the simplex, as DATM learns them).
 */
export type LabelForm = 'hard' | 'soft' | 'logits' | 'targets';

/**
 * What a method's objective reads the labels as: class probabilities (the matching methods: hard labels,
 * soft labels, learned logits) or regression targets (the KRR methods KIP/RFAD/FRePo, whose learned labels
 * start as centred one-hot vectors and are used as they are, 'targets').
 */
export type LabelSpace = 'probabilities' | 'targets';

export const labelConfigSchema = z
  .object({
    /**
     * 'hard' (class indices), 'teacher' (the class probabilities of a ConvNet trained on the real data:
     * DeepCore's cached 40-epoch selection network) or 'uniform'.
     */
    init: z.enum(['hard', 'teacher', 'uniform']).default('hard'),
    /** Learn the labels as logits (softmax), in the optimizer's 'labels' group. */
    learn: z.boolean().default(false),
  })
  .strict()
  .default({});
export type LabelConfig = z.infer<typeof labelConfigSchema>;

/** Logits whose softmax puts 0.9 on the class (hard labels turned learnable). */
function hardLogits(labels: E.Tensor, k: number): E.Tensor {
  return E.tidy(() =>
    E.nn
      .oneHot(labels, k)
      .float()
      .mul(Math.log((0.9 * (k - 1)) / 0.1)),
  );
}

export class SyntheticSet {
  /** A learned training learning rate (MTT/TESLA), stored in the artifact and used by evaluation. */
  lr: E.Tensor | null = null;
  /** An exponential moving average of the images group's tensors (FTD), or null. */
  private ema: E.Tensor[] | null = null;
  private form: LabelForm;

  constructor(
    readonly parameterization: Parameterization,
    /** Labels of the decoded rows: int64 [M] (hard), or float [M, classes] probabilities or logits. */
    public labels: E.Tensor,
    readonly ipc: number,
    readonly numClasses: number,
    labelForm?: LabelForm,
  ) {
    this.form = labelForm ?? (labels.dtype === 'int64' ? 'hard' : 'soft');
    const rows = numClasses * parameterization.decodedPerClass;
    if (labels.size(0) !== rows)
      throw new Error(`SyntheticSet: ${labels.size(0)} labels for ${rows} decoded images`);
    if (this.learnedLabels && !labels.requiresGrad) labels.requiresGrad_();
  }

  /** Whether the labels are learnable (logits or regression targets, in the optimizer's 'labels' group). */
  get learnedLabels(): boolean {
    return this.form === 'logits' || this.form === 'targets';
  }

  get labelForm(): LabelForm {
    return this.form;
  }

  /** Decoded training images of each class (ipc for pixels; more for factorised parameterizations). */
  get decodedPerClass(): number {
    return this.parameterization.decodedPerClass;
  }

  /** Replaces the labels (e.g. teacher probabilities, learnable logits); the set owns the new tensor. */
  setLabels(labels: E.Tensor, form: Exclude<LabelForm, 'hard'>): void {
    const rows = this.labels.size(0);
    if (labels.ndim !== 2 || labels.size(0) !== rows || labels.size(1) !== this.numClasses)
      throw new Error(
        `setLabels: expected [${rows}, ${this.numClasses}] soft labels, got [${labels.shape.join(', ')}]`,
      );
    this.labels.dispose();
    this.form = form;
    this.labels = this.learnedLabels && !labels.requiresGrad ? labels.requiresGrad_() : labels;
  }

  /** Sets the learned learning rate (a scalar leaf in the optimizer's 'lr' group). */
  setLr(lr: E.Tensor): void {
    this.lr?.dispose();
    this.lr = lr.requiresGrad ? lr : lr.requiresGrad_();
  }

  /** Starts an exponential moving average of the stored images (the 'images' group) at their current values. */
  enableEma(): void {
    this.ema?.forEach((t) => t.dispose());
    this.ema = this.groups.images.map((t) => E.tidy(() => t.detach().clone()).keep());
  }

  get hasEma(): boolean {
    return this.ema !== null;
  }

  /** ema = decay ema + (1 - decay) images, once per iteration (FTD's ModelEmaV2: no warm-up, no bias correction). */
  updateEma(decay: number): void {
    if (!this.ema) throw new Error('updateEma: the set keeps no moving average (enableEma first)');
    const images = this.groups.images;
    E.noGrad(() => this.ema?.forEach((e, i) => e.mul_(decay).add_(images[i].detach(), 1 - decay)));
  }

  /**
   * Runs `fn` with the moving average in place of the stored images (decode, evaluate, save), then
   * puts the images back exactly; without a moving average it just runs `fn`. What `fn` returns must
   * not alias the stored images (detached pixels share their storage and would read the raw images
   * afterwards): use the average inside `fn`, or return a clone.
   */
  withEma<T>(fn: () => T): T {
    const ema = this.ema;
    if (!ema) return fn();
    const images = this.groups.images;
    const saved = images.map((t) => E.tidy(() => t.detach().clone()).keep());
    E.noGrad(() => images.forEach((t, i) => t.copy_(ema[i])));
    try {
      return fn();
    } finally {
      E.noGrad(() => images.forEach((t, i) => t.copy_(saved[i])));
      saved.forEach((t) => t.dispose());
    }
  }

  /** The learnable tensors of each optimizer group (empty where the set has none). */
  get groups(): Record<Group, E.Tensor[]> {
    const of = (g: 'images' | 'decoder') =>
      this.parameterization.tensors.filter((t) => t.group === g).map((t) => t.tensor);
    return {
      images: of('images'),
      decoder: of('decoder'),
      labels: this.learnedLabels ? [this.labels] : [],
      lr: this.lr ? [this.lr] : [],
    };
  }

  /** Every learnable tensor, group by group in GROUPS order: what a method's gradients line up with. */
  get learnable(): E.Tensor[] {
    const g = this.groups;
    return GROUPS.flatMap((name) => g[name]);
  }

  /**
   * Images in model-input space and labels (class indices, probabilities, or regression targets),
   * differentiable.
   */
  decode(): { images: E.Tensor; labels: E.Tensor } {
    const labels = this.form === 'logits' ? E.nn.softmax(this.labels, 1) : this.labels;
    return { images: this.parameterization.decode(), labels };
  }

  /**
   * What a network is trained on under the standard protocol (detached): the decoded images, hard or
   * soft labels (soft cross-entropy), the learned lr. Learned regression targets train as `targetLoss`
   * says (eval/protocol.ts TargetLoss; default 'softmax').
   */
  trainingSet(targetLoss: TargetLoss = 'softmax'): TrainSet {
    return E.tidy(() => {
      const { images, labels } = this.decode();
      const lr = this.lr?.item();
      if (this.form === 'targets') return { ...targetTrainSet(images, labels, targetLoss), lr };
      return { images: images.detach(), labels: labels.detach(), lr };
    });
  }

  /** Whether standard-protocol training uses soft cross-entropy (probability labels). */
  get softTraining(): boolean {
    return this.form === 'soft' || this.form === 'logits';
  }

  /** Rows of class c in decode()'s output (decodedPerClass of each class, in class order). */
  classRows(t: E.Tensor, c: number): E.Tensor {
    const n = this.decodedPerClass;
    return t.narrow(0, c * n, n);
  }

  /**
   * Gradients for `learnable` (null where none) from gradients with respect to a decode()'s outputs:
   * the chain rule through the parameterization and the label softmax. Methods that differentiate
   * the decoded images piecewise (e.g. class by class) call it once with the assembled gradients.
   */
  pullBack(
    decoded: { images: E.Tensor; labels: E.Tensor },
    imageGrad: E.Tensor,
    labelGrad: E.Tensor | null = null,
  ): (E.Tensor | null)[] {
    const learnable = this.learnable;
    // Pixels with fixed labels: the decoded images are the learnable tensor itself.
    if (learnable.length === 1 && learnable[0] === decoded.images) return [imageGrad];
    const outputs = [decoded.images];
    const weights = [imageGrad];
    if (labelGrad && decoded.labels.requiresGrad) {
      outputs.push(decoded.labels);
      weights.push(labelGrad);
    }
    return E.grad(outputs, learnable, { gradOutputs: weights, allowUnused: true });
  }

  /** What the set stores, against the budget of classes x ipc images of `imageShape`. */
  storage(imageShape: [number, number, number]): StorageInfo {
    const labelFloats = this.form === 'hard' ? 0 : this.labels.numel;
    const floats = storedFloats(this.parameterization) + labelFloats + (this.lr ? 1 : 0);
    return storageInfo(floats, { imageShape, classes: this.numClasses, ipc: this.ipc });
  }

  /** How to rebuild the set: parameterization kind and settings, label form (JSON, for metadata). */
  describe(): { parameterization: ParameterizationConfig; labels: LabelForm; ipc: number } {
    const p = this.parameterization;
    return { parameterization: { kind: p.kind, ...p.settings }, labels: this.form, ipc: this.ipc };
  }

  /** All of the set's tensors (detached), keyed for a checkpoint or an artifact: `<prefix><name>`. */
  stateTensors(prefix = 'set.'): Record<string, E.Tensor> {
    const out: Record<string, E.Tensor> = {};
    for (const t of this.parameterization.tensors) out[`${prefix}param.${t.name}`] = t.tensor.detach();
    const key = { logits: 'labelLogits', targets: 'labelTargets', hard: 'labels', soft: 'labels' }[this.form];
    out[`${prefix}${key}`] = this.labels.detach();
    if (this.lr) out[`${prefix}lr`] = this.lr.detach();
    this.ema?.forEach((t, i) => (out[`${prefix}ema.${i}`] = t));
    return out;
  }

  /** The set saved by stateTensors/describe (it takes ownership of the tensors it uses). */
  static restore(
    shape: ShapeInfo,
    config: ParameterizationConfig,
    tensors: Record<string, E.Tensor>,
    prefix = 'set.',
  ): SyntheticSet {
    const { kind, settings } = resolveParameterization(config, shape);
    const own: Record<string, E.Tensor> = {};
    for (const [k, t] of Object.entries(tensors))
      if (k.startsWith(`${prefix}param.`)) own[k.slice(prefix.length + 'param.'.length)] = t;
    const p = restoreParameterization(kind, shape, settings, own);
    const logits = tensors[`${prefix}labelLogits`];
    const targets = tensors[`${prefix}labelTargets`];
    const labels = logits ?? targets ?? tensors[`${prefix}labels`];
    if (!labels)
      throw new Error(
        `no ${prefix}labels, ${prefix}labelLogits or ${prefix}labelTargets among the saved tensors`,
      );
    const form = logits ? 'logits' : targets ? 'targets' : undefined;
    const set = new SyntheticSet(p, labels, shape.ipc, shape.classes, form);
    if (tensors[`${prefix}lr`]) set.setLr(tensors[`${prefix}lr`]);
    const ema = set.groups.images.map((_, i) => tensors[`${prefix}ema.${i}`]);
    if (ema.length > 0 && ema.every((t) => t)) set.ema = ema;
    return set;
  }

  /**
   * A new set of `ipc` images' storage per class in the given parameterization, initialised from
   * Gaussian noise, random real images or a coreset (as many full-size images per class as the
   * parameterization draws), with labels as `labels` says.
   */
  static create(
    dataset: Dataset,
    ipc: number,
    init: InitKind,
    gen: E.Generator,
    o: { parameterization?: ParameterizationConfig; labels?: LabelConfig; labelSpace?: LabelSpace } = {},
  ): SyntheticSet {
    const k = dataset.numClasses;
    const shape: ShapeInfo = { imageShape: dataset.imageShape, classes: k, ipc };
    const { kind, settings } = resolveParameterization(
      o.parameterization ?? parameterizationConfigSchema.parse(undefined),
      shape,
    );
    const per = kind.initImagesPerClass(shape, settings);
    if (per > dataset.smallestClassSize && init !== 'noise') {
      throw new Error(
        `the ${kind.kind} parameterization at ipc ${ipc} draws ${per} images per class, more than the smallest class of ${dataset.name} (${dataset.smallestClassSize} images)`,
      );
    }
    const images = initialImages(dataset, per, init, gen);
    const p = E.tidy(() => kind.create(shape, settings, images, gen));
    images.dispose();
    const n = p.decodedPerClass;
    const hard = E.tidy(() => E.arange(k).unsqueeze(1).expand(k, n).flatten().keep());
    const set = new SyntheticSet(p, hard, ipc, k);
    const labels = o.labels ?? labelConfigSchema.parse(undefined);
    if (o.labelSpace === 'targets') set.initTargets(labels);
    else set.initLabels(dataset, labels);
    return set;
  }

  /** Regression targets (KRR methods): hard labels, or learnable targets starting as centred one-hot vectors. */
  private initTargets(config: LabelConfig): void {
    if (config.init !== 'hard')
      throw new Error(
        `a kernel-regression method's labels are regression targets that start as centred one-hot vectors: labels.init must be 'hard' (got '${config.init}'); learn them with labels.learn`,
      );
    if (config.learn) this.setLabels(centredOneHot(this.labels, this.numClasses).keep(), 'targets');
  }

  /** Turns the hard labels into teacher or uniform probabilities, and into logits when learned. */
  private initLabels(dataset: Dataset, config: LabelConfig): void {
    const k = this.numClasses;
    if (config.init === 'hard') {
      if (config.learn) this.setLabels(hardLogits(this.labels, k).keep(), 'logits');
      return;
    }
    const logits =
      config.init === 'uniform'
        ? E.zeros([this.labels.size(0), k]).keep()
        : E.tidy(() => {
            const teacher = selectionNetwork(dataset, 0);
            try {
              // No gradient flows into the initial labels: decode and forward without graphs.
              return E.noGrad(() =>
                teacher.net.forward(teacher.state, this.parameterization.decode(), { train: false }),
              ).keep();
            } finally {
              disposeFeatureNet(teacher);
            }
          });
    if (config.learn) this.setLabels(logits, 'logits');
    else {
      this.setLabels(
        E.tidy(() => E.nn.softmax(logits, 1).keep()),
        'soft',
      );
      logits.dispose();
    }
  }
}

/** `per` images of each class (class-ordered): Gaussian noise, random real images or a coreset. */
function initialImages(dataset: Dataset, per: number, init: InitKind, gen: E.Generator): E.Tensor {
  // A parameterization that takes no images (LinBa starts from random bases) needs no selection.
  if (per === 0) return E.zeros([0, ...dataset.imageShape]);
  if (init === 'noise') return E.randn([dataset.numClasses * per, ...dataset.imageShape], { generator: gen });
  // Coreset inits select with the (cached) DeepCore selection network of seed 0, not from the run's stream.
  const feature = init === 'real' || init === 'random' ? undefined : selectionNetwork(dataset, 0);
  const indices = selectCoreset(init === 'real' ? 'random' : init, dataset, per, gen, feature);
  if (feature) disposeFeatureNet(feature);
  const picked = dataset.gather(indices);
  picked.labels.dispose();
  return picked.images;
}
