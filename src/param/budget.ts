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

/** What a set stores against the budget of classes x ipc images: floats, bytes (float32), images-equivalent. */
export interface StorageInfo {
  floats: number;
  bytes: number;
  /** floats / (C * H * W): the storage in images of the dataset's size. */
  imagesEquivalent: number;
  /** The budget it is measured against: classes x ipc images. */
  budgetImages: number;
}

/** The storage of `floats` stored numbers for `shape` (its classes x ipc images are the budget). */
export function storageInfo(floats: number, shape: ShapeInfo): StorageInfo {
  return {
    floats,
    bytes: 4 * floats,
    imagesEquivalent: floats / imageFloats(shape),
    budgetImages: shape.classes * shape.ipc,
  };
}
