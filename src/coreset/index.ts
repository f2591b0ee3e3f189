export {
  CORESET_METHODS,
  selectCoreset,
  herding,
  kCenter,
  mostForgotten,
  type CoresetMethod,
} from './select.js';
export {
  DEEPCORE_SELECTION,
  disposeFeatureNet,
  embedTrain,
  ForgettingCounter,
  selectionNetwork,
  trainFeatureNet,
  type FeatureNet,
  type FeatureNetOptions,
  type SelectionTraining,
} from './features.js';
