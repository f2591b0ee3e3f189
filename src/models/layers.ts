// Networks as data: a model is a list of layers that one interpreter initialises
// (PyTorch's default initialisation) and runs functionally over explicit
// parameter/buffer maps, so training, unrolled updates (MTT, DD) and per-step
// gradients (DC) all use the same code.
import * as E from '../engine/index.js';

export type Norm = 'instance' | 'batch' | 'layer' | 'group' | 'none';
export type Activation = 'relu' | 'sigmoid' | 'leakyrelu' | 'swish';
export type Pooling = 'avg' | 'max' | 'none';

export type Layer =
  | {
      kind: 'conv';
      name: string;
      cin: number;
      cout: number;
      k: number;
      stride: number;
      padding: number;
      bias: boolean;
    }
  | {
      kind: 'norm';
      name: string;
      norm: Exclude<Norm, 'none'>;
      channels: number;
      shape: [number, number, number];
    }
  | { kind: 'act'; fn: Activation }
  | { kind: 'pool'; fn: Exclude<Pooling, 'none'>; k: number; stride: number }
  | { kind: 'flatten' }
  | { kind: 'linear'; name: string; fin: number; fout: number }
  | { kind: 'residual'; main: Layer[]; shortcut: Layer[] };

/** Parameters and buffers of one network instance, by layer-qualified name, in definition order. */
export interface NetState {
  params: Map<string, E.Tensor>;
  buffers: Map<string, E.Tensor>;
}

export interface ForwardOptions {
  /** Batch norm: batch statistics and running-stat updates (true) or running statistics (false). */
  train?: boolean;
}

function uniform(shape: number[], bound: number, gen: E.Generator): E.Tensor {
  return E.tidy(() =>
    E.rand(shape, { generator: gen })
      .mul(2 * bound)
      .sub(bound),
  );
}

/** PyTorch's defaults: kaiming_uniform(a=sqrt(5)) weights and U(+-1/sqrt(fan_in)) biases; norms 1/0. */
export function initLayers(
  layers: Layer[],
  gen: E.Generator,
  state: NetState = { params: new Map(), buffers: new Map() },
): NetState {
  for (const l of layers) {
    switch (l.kind) {
      case 'conv': {
        const bound = 1 / Math.sqrt(l.cin * l.k * l.k);
        state.params.set(`${l.name}.weight`, uniform([l.cout, l.cin, l.k, l.k], bound, gen));
        if (l.bias) state.params.set(`${l.name}.bias`, uniform([l.cout], bound, gen));
        break;
      }
      case 'linear': {
        const bound = 1 / Math.sqrt(l.fin);
        state.params.set(`${l.name}.weight`, uniform([l.fout, l.fin], bound, gen));
        state.params.set(`${l.name}.bias`, uniform([l.fout], bound, gen));
        break;
      }
      case 'norm': {
        const shape = l.norm === 'layer' ? l.shape : [l.channels];
        state.params.set(`${l.name}.weight`, E.ones(shape));
        state.params.set(`${l.name}.bias`, E.zeros(shape));
        if (l.norm === 'batch') {
          state.buffers.set(`${l.name}.runningMean`, E.zeros([l.channels]));
          state.buffers.set(`${l.name}.runningVar`, E.ones([l.channels]));
        }
        break;
      }
      case 'residual':
        initLayers(l.main, gen, state);
        initLayers(l.shortcut, gen, state);
        break;
      default:
        break;
    }
  }
  return state;
}

function param(state: NetState, name: string): E.Tensor {
  const p = state.params.get(name);
  if (!p) throw new Error(`network state has no parameter '${name}' (was it made by this model's init()?)`);
  return p;
}

/** Groups of the 'group' norm (the reference's GroupNorm(4, C)). */
const GROUP_NORM_GROUPS = 4;

/** Group count of a norm layer that normReluPool can fuse with a following ReLU and 2x2 average pool. */
function fusableGroups(layers: Layer[], i: number, h: E.Tensor): number | null {
  const [norm, act, pool] = [layers[i], layers[i + 1], layers[i + 2]];
  if (norm?.kind !== 'norm' || (norm.norm !== 'instance' && norm.norm !== 'group')) return null;
  if (act?.kind !== 'act' || act.fn !== 'relu') return null;
  if (pool?.kind !== 'pool' || pool.fn !== 'avg' || pool.k !== 2 || pool.stride !== 2) return null;
  if (h.device !== 'cpu' || h.ndim !== 4 || h.size(2) < 2 || h.size(3) < 2) return null;
  // The fused kernels cover float32/float64 (NCHW or channels-last) and bfloat16 (channels-last).
  if (h.dtype !== 'float32' && h.dtype !== 'float64' && h.dtype !== 'bfloat16') return null;
  return norm.norm === 'instance' ? norm.channels : GROUP_NORM_GROUPS;
}

export function runLayers(layers: Layer[], state: NetState, x: E.Tensor, o: ForwardOptions = {}): E.Tensor {
  let h = x;
  for (let i = 0; i < layers.length; i++) {
    const l = layers[i];
    const groups = fusableGroups(layers, i, h);
    if (groups !== null && l.kind === 'norm') {
      // The ConvNet block norm -> ReLU -> avg pool as one fused op (same values, a third of the memory traffic).
      h = E.nn.normReluPool(h, groups, {
        weight: param(state, `${l.name}.weight`),
        bias: param(state, `${l.name}.bias`),
      });
      i += 2;
      continue;
    }
    switch (l.kind) {
      case 'conv':
        h = E.nn.conv2d(h, param(state, `${l.name}.weight`), l.bias ? param(state, `${l.name}.bias`) : null, {
          stride: l.stride,
          padding: l.padding,
        });
        break;
      case 'linear':
        h = E.nn.linear(h, param(state, `${l.name}.weight`), param(state, `${l.name}.bias`));
        break;
      case 'norm': {
        const weight = param(state, `${l.name}.weight`);
        const bias = param(state, `${l.name}.bias`);
        if (l.norm === 'instance') h = E.nn.groupNorm(h, l.channels, { weight, bias });
        else if (l.norm === 'group') h = E.nn.groupNorm(h, GROUP_NORM_GROUPS, { weight, bias });
        else if (l.norm === 'layer') h = E.nn.layerNorm(h, l.shape, { weight, bias });
        else {
          h = E.nn.batchNorm(h, {
            weight,
            bias,
            runningMean: state.buffers.get(`${l.name}.runningMean`),
            runningVar: state.buffers.get(`${l.name}.runningVar`),
            training: o.train ?? true,
          });
        }
        break;
      }
      case 'act':
        h =
          l.fn === 'relu'
            ? h.relu()
            : l.fn === 'sigmoid'
              ? h.sigmoid()
              : l.fn === 'leakyrelu'
                ? h.leakyRelu(0.01)
                : h.silu();
        break;
      case 'pool':
        h =
          l.fn === 'avg'
            ? E.nn.avgPool2d(h, l.k, { stride: l.stride })
            : E.nn.maxPool2d(h, l.k, { stride: l.stride });
        break;
      case 'flatten':
        h = h.flatten(1);
        break;
      case 'residual': {
        const main = runLayers(l.main, state, h, o);
        const short = l.shortcut.length ? runLayers(l.shortcut, state, h, o) : h;
        h = main.add(short).relu();
        break;
      }
    }
  }
  return h;
}

/**
 * A copy of a network's state in another floating dtype, with 4-D weights in channels-last layout:
 * for no-grad passes (e.g. DM's real images), where a channels-last input keeps every convolution
 * on oneDNN's fastest path and bfloat16 halves the memory traffic.
 */
export function castState(state: NetState, dtype: E.DType): NetState {
  const cast = (t: E.Tensor) => {
    const c = t.to(dtype);
    return c.ndim === 4 ? c.contiguous('channelsLast') : c;
  };
  return {
    params: new Map([...state.params].map(([k, t]) => [k, cast(t)])),
    buffers: new Map([...state.buffers].map(([k, t]) => [k, cast(t)])),
  };
}

/** An input for a castState copy: the same dtype, channels-last layout (one channel included). */
/**
 * castState's copy made outside autograd, with parameters that are gradient leaves of their own:
 * a lower-precision network to take gradients at (mixed-precision training, DC's real side).
 */
export function gradientLeaves(state: NetState, dtype: E.DType): NetState {
  const low = E.noGrad(() => castState(state, dtype));
  for (const p of low.params.values()) p.requiresGrad_();
  return low;
}

export function castInput(x: E.Tensor, dtype: E.DType): E.Tensor {
  return x.to(dtype).contiguous('channelsLast');
}

export function countParams(state: NetState): number {
  let n = 0;
  for (const p of state.params.values()) n += p.numel;
  return n;
}
