export { createNetwork, evaluationModel, MODEL_SPECS, ModelSpecError, type Network } from './zoo.js';
export {
  castInput,
  castState,
  gradientLeaves,
  countParams,
  type NetState,
  type ForwardOptions,
  type Layer,
} from './layers.js';
export {
  paramLayout,
  layoutSize,
  flattenParams,
  unflattenParams,
  sameLayout,
  type ParamLayout,
} from './flat.js';
