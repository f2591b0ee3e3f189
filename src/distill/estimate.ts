// What a run will cost on this machine, measured before it starts (`distill --dry-run`): a few
// iterations of the method and two short evaluations, scaled to the config's iterations, epochs and
// networks. Nothing is written; the estimate ignores caches (a cached baseline costs nothing).
import * as E from '../engine/index.js';
import type { Dataset } from '../data/dataset.js';
import { evaluateSet } from '../eval/index.js';
import { evaluationProtocol, type DistillConfig } from './config.js';
import { closeSession, newSession, runIterations } from './session.js';
import { median as medianOf } from '../util/stats.js';

export interface RunEstimate {
  /** Median seconds of the measured iterations (after one warm-up). */
  secondsPerIteration: number;
  /** Seconds per evaluation epoch of one network, and the per-network constant (init, testing). */
  evalSecondsPerEpoch: number;
  evalSecondsPerNetwork: number;
  /** Epochs of each evaluation network under the config's protocol. */
  evalEpochs: number;
  /** Distillation; evaluations (periodic, final, the random-subset baseline when enabled), in seconds. */
  distillSeconds: number;
  evaluationSeconds: number;
}

function median(xs: number[]): number {
  return medianOf(xs) ?? NaN;
}

function timed(fn: () => void): number {
  const t0 = performance.now();
  fn();
  return (performance.now() - t0) / 1000;
}

/**
 * Measures `measured` iterations (plus a warm-up) and evaluations of 1 and 3 epochs on the initial set.
 *
 * @example const e = await estimateRun(config, dataset); e.distillSeconds + e.evaluationSeconds
 */
export async function estimateRun(
  config: DistillConfig,
  dataset: Dataset,
  measured = 3,
): Promise<RunEstimate> {
  const session = newSession(dataset, config);
  const seconds: number[] = [];
  // At least one iteration is measured, even for a run of 0 iterations (its cost is then 0).
  const its = Math.max(1, Math.min(config.iterations, measured + 1));
  try {
    await runIterations(session, 0, its, { after: ({ seconds: s }) => void seconds.push(s) });
  } finally {
    closeSession(session);
  }
  const secondsPerIteration = median(seconds.length > 1 ? seconds.slice(1) : seconds);
  const protocol = evaluationProtocol(config, dataset.name);
  const evalModel = protocol.evalModel;
  const evalTime = (epochs: number) =>
    E.tidy(() => {
      const set = session.synthetic.trainingSet(config.evalTargetLoss);
      return timed(() =>
        evaluateSet(dataset, set, {
          models: [evalModel],
          runs: 1,
          protocol: { ...protocol, epochs },
          seed: 0,
        }),
      );
    });
  const [one, three] = [evalTime(1), evalTime(3)];
  // Epochs 0..E are E + 1 passes: the 1- and 3-epoch runs train 2 and 4 passes.
  const evalSecondsPerEpoch = Math.max(0, (three - one) / 2);
  const evalSecondsPerNetwork = Math.max(0, one - 2 * evalSecondsPerEpoch);
  // The final evaluation, the random-subset baseline, and every periodic evaluation before the end.
  const periodic = config.evalEvery > 0 ? Math.floor((config.iterations - 1) / config.evalEvery) : 0;
  const networks = config.evalRuns * ((config.baselines ? 2 : 1) + periodic);
  return {
    secondsPerIteration,
    evalSecondsPerEpoch,
    evalSecondsPerNetwork,
    evalEpochs: protocol.epochs,
    distillSeconds: secondsPerIteration * config.iterations,
    evaluationSeconds: networks * (evalSecondsPerNetwork + evalSecondsPerEpoch * (protocol.epochs + 1)),
  };
}
