// Learning-rate schedules as pure functions of the epoch (or step) index, plus a
// small driver that applies one to an optimizer. Pure functions make resumed
// runs trivially identical: the rate depends only on the index.
import { EngineError } from '../errors.js';
import type { Optimizer } from './optimizer.js';

export type Schedule = (epoch: number) => number;

/** lr * gamma^floor(epoch / stepSize). */
export function stepSchedule(baseLr: number, stepSize: number, gamma = 0.1): Schedule {
  if (!(stepSize > 0)) throw new EngineError('stepSchedule', `stepSize must be positive, got ${stepSize}`);
  return (epoch) => baseLr * gamma ** Math.floor(epoch / stepSize);
}

/** lr * gamma^(number of milestones <= epoch). */
export function multiStepSchedule(baseLr: number, milestones: readonly number[], gamma = 0.1): Schedule {
  const sorted = [...milestones].sort((a, b) => a - b);
  return (epoch) => baseLr * gamma ** sorted.filter((m) => m <= epoch).length;
}

/** Cosine annealing from baseLr to minLr over tMax epochs (then held at minLr). */
export function cosineSchedule(baseLr: number, tMax: number, minLr = 0): Schedule {
  if (!(tMax > 0)) throw new EngineError('cosineSchedule', `tMax must be positive, got ${tMax}`);
  return (epoch) => minLr + ((baseLr - minLr) * (1 + Math.cos((Math.PI * Math.min(epoch, tMax)) / tMax))) / 2;
}

/** Sets optimizer.lr from a schedule; call step() once per epoch, as with PyTorch's schedulers. */
export class LRScheduler {
  epoch = 0;

  constructor(
    readonly optimizer: Optimizer,
    readonly schedule: Schedule,
  ) {
    optimizer.lr = schedule(0);
  }

  step(): void {
    this.epoch++;
    this.optimizer.lr = this.schedule(this.epoch);
  }
}
