// The parameterizations: importing this module registers every kind (each registers itself in its file).
export * from './kind.js';
export { storageInfo, type StorageInfo } from './budget.js';
export { pixels, pixelParameterization } from './pixels.js';
export { multiFormation, multiFormationDecode, multiFormationEncode } from './multiformation.js';
export { linba, linbaPerClass } from './linba.js';
export { haba, habaBases } from './haba.js';
