// The reference model zoo (DC/DSA/DM/MTT code: ConvNet family, MLP, LeNet,
// AlexNet, VGG11, ResNet18 and variants), named by spec strings such as
// ConvNet, ConvNetW64, ConvNetD4, ConvNetBN, ConvNetNP, MLP, AlexNetBN,
// ResNet18BN_AP. Layer shapes follow the reference implementations exactly,
// including padding 3 on the first conv of single-channel (28 px) inputs.
import * as E from '../engine/index.js';
import {
  initLayers,
  runLayers,
  type Activation,
  type ForwardOptions,
  type Layer,
  type NetState,
  type Norm,
  type Pooling,
} from './layers.js';

export interface Network {
  readonly spec: string;
  readonly inputShape: [number, number, number];
  readonly numClasses: number;
  /** Length of the feature vector embed() returns. */
  readonly featureDim: number;
  /** Whether any layer is a batch norm (running statistics: buffers, train/eval behaviour differs). */
  readonly hasBatchNorm: boolean;
  init(gen: E.Generator): NetState;
  forward(state: NetState, x: E.Tensor, o?: ForwardOptions): E.Tensor;
  /** Features before the final linear classifier. */
  embed(state: NetState, x: E.Tensor, o?: ForwardOptions): E.Tensor;
  /**
   * Intermediate features for layer-wise matching: the output of every top-level nonlinearity (for the
   * ConvNet, each block after its ReLU and before its pooling) followed by the embedding, in depth order.
   * CAFE's ConvNet.forward returns the same tensors (f1..f3 after each ReLU, f4 = the last pooling,
   * flattened here). The values equal forward()'s; it runs without the fused norm-ReLU-pool kernel.
   *
   * @example const [relu1, relu2, relu3, embedding] = net.blockFeatures(state, x);
   */
  blockFeatures(state: NetState, x: E.Tensor, o?: ForwardOptions): E.Tensor[];
}

export class ModelSpecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ModelSpecError';
  }
}

/** A sequential network whose last layer is the linear classifier. */
class SequentialNet implements Network {
  readonly featureDim: number;
  readonly hasBatchNorm: boolean;

  constructor(
    readonly spec: string,
    readonly inputShape: [number, number, number],
    readonly numClasses: number,
    private readonly features: Layer[],
    private readonly classifier: Extract<Layer, { kind: 'linear' }>,
  ) {
    this.featureDim = classifier.fin;
    this.hasBatchNorm = containsBatchNorm(features);
  }

  init(gen: E.Generator): NetState {
    return initLayers([...this.features, this.classifier], gen);
  }

  embed(state: NetState, x: E.Tensor, o: ForwardOptions = {}): E.Tensor {
    this.checkInput(x);
    return runLayers(this.features, state, x, o);
  }

  blockFeatures(state: NetState, x: E.Tensor, o: ForwardOptions = {}): E.Tensor[] {
    this.checkInput(x);
    const out: E.Tensor[] = [];
    let h = x;
    for (const layer of this.features) {
      h = runLayers([layer], state, h, o);
      if (layer.kind === 'act') out.push(h);
    }
    out.push(h);
    return out;
  }

  private checkInput(x: E.Tensor): void {
    const [c, h, w] = this.inputShape;
    if (x.ndim !== 4 || x.size(1) !== c || x.size(2) !== h || x.size(3) !== w) {
      throw new ModelSpecError(
        `${this.spec} expects input [N, ${c}, ${h}, ${w}], got [${x.shape.join(', ')}]`,
      );
    }
  }

  forward(state: NetState, x: E.Tensor, o: ForwardOptions = {}): E.Tensor {
    return runLayers([this.classifier], state, this.embed(state, x, o), o);
  }
}

function containsBatchNorm(layers: Layer[]): boolean {
  return layers.some((l) =>
    l.kind === 'norm'
      ? l.norm === 'batch'
      : l.kind === 'residual' && (containsBatchNorm(l.main) || containsBatchNorm(l.shortcut)),
  );
}

/** Tracks the feature-map shape while layers are appended. */
class Builder {
  layers: Layer[] = [];
  private count = 0;
  constructor(
    public c: number,
    public h: number,
    public w: number,
  ) {}

  conv(
    cout: number,
    k: number,
    o: { stride?: number; padding?: number; bias?: boolean; name?: string } = {},
  ): this {
    const stride = o.stride ?? 1;
    const padding = o.padding ?? 0;
    this.layers.push({
      kind: 'conv',
      name: o.name ?? `conv${this.count++}`,
      cin: this.c,
      cout,
      k,
      stride,
      padding,
      bias: o.bias ?? true,
    });
    this.c = cout;
    this.h = Math.floor((this.h + 2 * padding - k) / stride) + 1;
    this.w = Math.floor((this.w + 2 * padding - k) / stride) + 1;
    return this;
  }
  norm(norm: Norm, name?: string): this {
    if (norm !== 'none')
      this.layers.push({
        kind: 'norm',
        name: name ?? `norm${this.count++}`,
        norm,
        channels: this.c,
        shape: [this.c, this.h, this.w],
      });
    return this;
  }
  act(fn: Activation): this {
    this.layers.push({ kind: 'act', fn });
    return this;
  }
  pool(fn: Pooling, k = 2): this {
    if (fn !== 'none') {
      this.layers.push({ kind: 'pool', fn, k, stride: k });
      this.h = Math.floor(this.h / k);
      this.w = Math.floor(this.w / k);
    }
    return this;
  }
  flatten(): number {
    this.layers.push({ kind: 'flatten' });
    return this.c * this.h * this.w;
  }
  linear(fin: number, fout: number, name = `fc${this.count++}`): Extract<Layer, { kind: 'linear' }> {
    return { kind: 'linear', name, fin, fout };
  }
  check(spec: string): void {
    if (this.h < 1 || this.w < 1)
      throw new ModelSpecError(
        `${spec} reduces the input to nothing (${this.h}x${this.w}); use a shallower model for this image size`,
      );
  }
}

interface ConvNetOptions {
  width: number;
  depth: number;
  act: Activation;
  norm: Norm;
  pool: Pooling;
}

function convNet(spec: string, shape: [number, number, number], classes: number, o: ConvNetOptions): Network {
  const [c, h, w] = shape;
  const b = new Builder(c, h, w);
  for (let d = 0; d < o.depth; d++) {
    // Single-channel inputs get padding 3 on the first conv (28 px -> 32 px maps), as in the reference.
    b.conv(o.width, 3, { padding: c === 1 && d === 0 ? 3 : 1, name: `features.${d}.conv` });
    b.norm(o.norm, `features.${d}.norm`).act(o.act).pool(o.pool);
  }
  b.check(spec);
  const fin = b.flatten();
  return new SequentialNet(spec, shape, classes, b.layers, b.linear(fin, classes, 'classifier'));
}

function defaultDepth(h: number): number {
  return h <= 32 ? 3 : h <= 64 ? 4 : 5;
}

// ASW before AS: the alternation takes the first token that matches.
const CONVNET_TOKENS = /^(D\d+|W\d+|ASW|AS|AR|AL|NN|BN|LN|IN|GN|NP|MP|AP)/;

function parseConvNet(spec: string, shape: [number, number, number], classes: number): Network {
  const o: ConvNetOptions = {
    width: 128,
    depth: defaultDepth(shape[1]),
    act: 'relu',
    norm: 'instance',
    pool: 'avg',
  };
  let rest = spec.slice('ConvNet'.length);
  while (rest.length > 0) {
    const m = CONVNET_TOKENS.exec(rest);
    if (!m) throw new ModelSpecError(`cannot parse '${rest}' in model spec '${spec}'. ${SPEC_HELP}`);
    const t = m[1];
    if (t[0] === 'D') o.depth = Number(t.slice(1));
    else if (t[0] === 'W') o.width = Number(t.slice(1));
    else if (t === 'AS') o.act = 'sigmoid';
    else if (t === 'AR') o.act = 'relu';
    else if (t === 'AL') o.act = 'leakyrelu';
    else if (t === 'ASW') o.act = 'swish';
    else if (t === 'NN') o.norm = 'none';
    else if (t === 'BN') o.norm = 'batch';
    else if (t === 'LN') o.norm = 'layer';
    else if (t === 'IN') o.norm = 'instance';
    else if (t === 'GN') o.norm = 'group';
    else if (t === 'NP') o.pool = 'none';
    else if (t === 'MP') o.pool = 'max';
    else o.pool = 'avg';
    rest = rest.slice(t.length);
  }
  if (o.depth < 1 || o.width < 1)
    throw new ModelSpecError(`model spec '${spec}' needs depth and width of at least 1`);
  return convNet(spec, shape, classes, o);
}

function mlp(spec: string, shape: [number, number, number], classes: number): Network {
  const b = new Builder(...shape);
  const fin = b.flatten();
  const hidden: Layer[] = [
    { kind: 'linear', name: 'fc_1', fin, fout: 128 },
    { kind: 'act', fn: 'relu' },
    { kind: 'linear', name: 'fc_2', fin: 128, fout: 128 },
    { kind: 'act', fn: 'relu' },
  ];
  return new SequentialNet(spec, shape, classes, [...b.layers, ...hidden], b.linear(128, classes, 'fc_3'));
}

function leNet(spec: string, shape: [number, number, number], classes: number): Network {
  const b = new Builder(...shape);
  b.conv(6, 5, { padding: shape[0] === 1 ? 2 : 0 })
    .act('relu')
    .pool('max')
    .conv(16, 5)
    .act('relu')
    .pool('max');
  b.check(spec);
  const fin = b.flatten();
  b.layers.push(
    { kind: 'linear', name: 'fc_1', fin, fout: 120 },
    { kind: 'act', fn: 'relu' },
    { kind: 'linear', name: 'fc_2', fin: 120, fout: 84 },
    { kind: 'act', fn: 'relu' },
  );
  return new SequentialNet(spec, shape, classes, b.layers, b.linear(84, classes, 'fc_3'));
}

function alexNet(spec: string, shape: [number, number, number], classes: number, norm: Norm): Network {
  const b = new Builder(...shape);
  b.conv(128, 5, { padding: shape[0] === 1 ? 4 : 2 })
    .norm(norm)
    .act('relu')
    .pool('max');
  b.conv(192, 5, { padding: 2 }).norm(norm).act('relu').pool('max');
  b.conv(256, 3, { padding: 1 }).norm(norm).act('relu');
  b.conv(192, 3, { padding: 1 }).norm(norm).act('relu');
  b.conv(192, 3, { padding: 1 }).norm(norm).act('relu').pool('max');
  b.check(spec);
  const fin = b.flatten();
  return new SequentialNet(spec, shape, classes, b.layers, b.linear(fin, classes, 'fc'));
}

function vgg11(spec: string, shape: [number, number, number], classes: number, norm: Norm): Network {
  const cfg: (number | 'M')[] = [64, 'M', 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512, 'M'];
  const b = new Builder(...shape);
  cfg.forEach((v, i) => {
    if (v === 'M') b.pool('max');
    else
      b.conv(v, 3, { padding: shape[0] === 1 && i === 0 ? 3 : 1 })
        .norm(norm)
        .act('relu');
  });
  b.check(spec);
  const fin = b.flatten();
  return new SequentialNet(spec, shape, classes, b.layers, b.linear(fin, classes, 'classifier'));
}

/** ResNet18 (BasicBlock x [2, 2, 2, 2]); `ap` replaces strided convs by stride-1 convs + 2x2 average pooling. */
function resNet18(
  spec: string,
  shape: [number, number, number],
  classes: number,
  norm: Norm,
  ap: boolean,
): Network {
  const b = new Builder(...shape);
  b.conv(64, 3, { padding: 1, bias: false, name: 'conv1' }).norm(norm, 'bn1').act('relu');
  let block = 0;
  for (const [planes, firstStride] of [
    [64, 1],
    [128, 2],
    [256, 2],
    [512, 2],
  ] as const) {
    for (const stride of [firstStride, 1]) {
      const name = `block${block++}`;
      const inC = b.c;
      const [inH, inW] = [b.h, b.w];
      const main = new Builder(inC, inH, inW);
      main
        .conv(planes, 3, { stride: ap ? 1 : stride, padding: 1, bias: false, name: `${name}.conv1` })
        .norm(norm, `${name}.bn1`)
        .act('relu');
      if (ap && stride !== 1) main.pool('avg');
      main.conv(planes, 3, { padding: 1, bias: false, name: `${name}.conv2` }).norm(norm, `${name}.bn2`);
      const shortcut = new Builder(inC, inH, inW);
      if (stride !== 1 || inC !== planes) {
        shortcut.conv(planes, 1, { stride: ap ? 1 : stride, bias: false, name: `${name}.shortcut.conv` });
        if (ap) shortcut.pool('avg');
        shortcut.norm(norm, `${name}.shortcut.norm`);
      }
      b.layers.push({ kind: 'residual', main: main.layers, shortcut: shortcut.layers });
      [b.c, b.h, b.w] = [main.c, main.h, main.w];
    }
  }
  if (!ap) b.pool('avg', 4); // F.avg_pool2d(out, 4) in the reference; the AP variant pools with kernel 1 (a no-op)
  b.check(spec);
  const fin = b.flatten();
  return new SequentialNet(spec, shape, classes, b.layers, b.linear(fin, classes, 'classifier'));
}

export const MODEL_SPECS = [
  'ConvNet',
  'ConvNet[D<depth>][W<width>][AS|AR|AL|ASW][NN|BN|LN|IN|GN][NP|MP|AP] (e.g. ConvNetW64, ConvNetD4, ConvNetBN, ConvNetNP)',
  'MLP',
  'LeNet',
  'AlexNet',
  'AlexNetBN',
  'VGG11',
  'VGG11BN',
  'ResNet18',
  'ResNet18BN',
  'ResNet18_AP',
  'ResNet18BN_AP',
];
const SPEC_HELP = `Valid model specs: ${MODEL_SPECS.join(', ')}.`;

/** Builds a network from its spec string for images of `shape` = [C, H, W] and `numClasses` classes. */
export function createNetwork(spec: string, shape: [number, number, number], numClasses: number): Network {
  if (spec.startsWith('ConvNet')) return parseConvNet(spec, shape, numClasses);
  switch (spec) {
    case 'MLP':
      return mlp(spec, shape, numClasses);
    case 'LeNet':
      return leNet(spec, shape, numClasses);
    case 'AlexNet':
      return alexNet(spec, shape, numClasses, 'none');
    case 'AlexNetBN':
      return alexNet(spec, shape, numClasses, 'batch');
    case 'VGG11':
      return vgg11(spec, shape, numClasses, 'instance');
    case 'VGG11BN':
      return vgg11(spec, shape, numClasses, 'batch');
    case 'ResNet18':
      return resNet18(spec, shape, numClasses, 'instance', false);
    case 'ResNet18BN':
      return resNet18(spec, shape, numClasses, 'batch', false);
    case 'ResNet18_AP':
      return resNet18(spec, shape, numClasses, 'instance', true);
    case 'ResNet18BN_AP':
      return resNet18(spec, shape, numClasses, 'batch', true);
    default:
      throw new ModelSpecError(`unknown model '${spec}'. ${SPEC_HELP}`);
  }
}

/**
 * The model the reference codes evaluate a set distilled with `spec` on, by default (their
 * get_eval_pool with eval_mode 'S'): a batch-norm model is replaced by its instance-norm
 * counterpart, "as the synthetic set is too small to measure BN hyper-parameters". The reference
 * cuts the spec at 'BN' (ConvNetBN -> ConvNet, VGG11BN -> VGG11, ResNet18BN_AP -> ResNet18); for
 * ConvNet specs the other tokens are kept (ConvNetW64BN -> ConvNetW64).
 */
export function evaluationModel(spec: string): string {
  if (!createNetwork(spec, [3, 32, 32], 10).hasBatchNorm) return spec;
  // No other ConvNet token contains 'BN', so removing it keeps the rest of the spec.
  if (spec.startsWith('ConvNet')) return spec.replace('BN', '');
  return spec.slice(0, spec.indexOf('BN'));
}
