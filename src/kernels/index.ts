// Kernels of infinitely wide networks and kernel ridge regression (the KRR methods' inner loop).
export { KIP_KERNEL, KernelError, kernelMatrix, type KernelSpec } from './ntk.js';
export {
  centredOneHot,
  krrAccuracy,
  krrMseLoss,
  krrPredict,
  krrSolve,
  labelSolve,
  regularized,
} from './krr.js';
export { mmd2, squaredDistances, type MMDKernel, type MMDOptions } from './mmd.js';
export { cfDiscrepancy, type CFWeights } from './cf.js';
