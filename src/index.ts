// Distillery's public API: distill a dataset, load and evaluate artifacts, extend the method and
// parameterization registries.
export { distill, defaultRunDir, type DistillInput, type DistillOptions } from './distill/api.js';
export { layeredConfig, resolveConfig, type DistillConfig, type PresetName } from './distill/config.js';
export { Distiller, type DistillHooks, type DistillResult } from './distill/distiller.js';
export { METHODS, getMethod, registerMethod } from './distill/registry.js';
export type { Method, MethodContext, StepResult, Family } from './distill/method.js';
export { SyntheticSet, type LabelForm } from './distill/synthetic.js';
export { newSession, restoreSession, runIterations, sessionState, type Session } from './distill/session.js';
export {
  registerParameterization,
  parameterizationKinds,
  type Parameterization,
  type ParameterizationKind,
} from './param/index.js';
export { loadArtifact, saveArtifact, type Artifact, type ArtifactMeta } from './artifact/artifact.js';
export { evaluateSet, defaultProtocol, type Protocol, type Score } from './eval/index.js';
export { loadDataset } from './data/registry.js';
