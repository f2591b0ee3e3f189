export {
  CORESET_METHODS,
  selectCoreset,
  herding,
  kCenter,
  mostForgotten,
  type CoresetMethod,
} from './select.js';
export { trainFeatureNet, embedTrain, type FeatureNet, type FeatureNetOptions } from './features.js';
