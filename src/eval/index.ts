export {
  defaultProtocol,
  trainAndTest,
  trainEpoch,
  accuracy,
  usesMixedPrecision,
  lowPrecisionGradients,
  type TrainingPrecision,
  type Protocol,
  type TrainSet,
  type TrainResult,
} from './protocol.js';
export {
  evaluateSet,
  randomSubsetBaseline,
  fullDataBaseline,
  summarize,
  type Score,
  type EvaluationOptions,
} from './evaluate.js';
