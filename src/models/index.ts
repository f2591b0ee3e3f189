export { createNetwork, MODEL_SPECS, ModelSpecError, type Network } from './zoo.js';
export { countParams, type NetState, type ForwardOptions, type Layer } from './layers.js';
