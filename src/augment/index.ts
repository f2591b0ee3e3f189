export {
  DSA,
  DSA_DEFAULTS,
  DsaError,
  GROUPS,
  defaultStrategy,
  type DsaOptions,
  type Group,
  type SegmentParams,
} from './dsa.js';
