// Raw pixels: the stored images are the training images (ipc per class).
import { z } from 'zod';
import * as E from '../engine/index.js';
import { registerParameterization, type Parameterization } from './kind.js';

class Pixels implements Parameterization {
  readonly kind = 'pixels';
  readonly settings = {};
  readonly tensors;

  constructor(
    readonly images: E.Tensor,
    readonly decodedPerClass: number,
  ) {
    this.tensors = [{ name: 'images', group: 'images' as const, tensor: images }];
  }

  decode(): E.Tensor {
    return this.images;
  }
}

/** A pixel parameterization of these images (a leaf that requires grad; the set owns it). */
export function pixelParameterization(images: E.Tensor, perClass: number): Parameterization {
  return new Pixels(images.requiresGrad ? images : images.requiresGrad_(), perClass);
}

export const pixels = registerParameterization({
  kind: 'pixels',
  summary: 'raw pixels: ipc stored images per class are the training images',
  schema: z.object({}).strict(),
  validate() {},
  initImagesPerClass: (shape) => shape.ipc,
  tensorNames: () => ['images'],
  create: (shape, _s, init) => pixelParameterization(init.clone().keep(), shape.ipc),
  restore: (shape, _s, tensors) => pixelParameterization(tensors.images, shape.ipc),
});
