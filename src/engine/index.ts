// The engine's public surface: typed tensors on libtorch with autograd to any order.
export { Tensor, isTensor, type Dims, type Operand, type MemoryFormat, type NestedArray } from './tensor.js';
export type { DType, TypedArray } from './dtype.js';
export { isFloating } from './dtype.js';
export { type Device, cudaAvailable, cudaDeviceCount } from './device.js';
export { EngineError } from './errors.js';
export * from './creation.js';
export * from './ops.js';
export * as nn from './nn.js';
export * as linalg from './linalg.js';
export { grad, noGrad, enableGrad, isGradEnabled, type GradOptions } from './autograd.js';
export { Generator, manualSeed } from './random.js';
export { tidy, keep } from './scope.js';
export * from './runtime.js';
export { saveSafetensors, loadSafetensors, type SafetensorsFile } from './safetensors.js';
export { writeFileAtomic } from './files.js';
export { gradcheck, gradgradcheck, type GradcheckOptions, type GradcheckResult } from './gradcheck.js';
export { Optimizer, type OptimizerState } from './optim/optimizer.js';
export { SGD, type SGDOptions } from './optim/sgd.js';
export { Adam, AdamW, type AdamOptions } from './optim/adam.js';
export { AdaBelief, type AdaBeliefOptions } from './optim/adabelief.js';
export { LAMB, type LAMBOptions } from './optim/lamb.js';
export {
  LRScheduler,
  stepSchedule,
  multiStepSchedule,
  cosineSchedule,
  type Schedule,
} from './optim/schedules.js';
export {
  ProcessGroup,
  DistributedError,
  worldFromEnv,
  type GroupOptions,
  type ReduceOp,
  type WorldEnv,
} from './distributed.js';
