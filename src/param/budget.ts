// The storage budget of classes x ipc images, in floats, shared by the factorised parameterizations.
import type { ShapeInfo } from './kind.js';

export function imageFloats(s: ShapeInfo): number {
  return s.imageShape[0] * s.imageShape[1] * s.imageShape[2];
}

export function budgetFloats(s: ShapeInfo): number {
  return s.classes * s.ipc * imageFloats(s);
}

/** U(-b, b) with b = sqrt(6 / (fanIn + fanOut)) (xavier_uniform), from `gen`. */
export function xavierBound(fanIn: number, fanOut: number): number {
  return Math.sqrt(6 / (fanIn + fanOut));
}
