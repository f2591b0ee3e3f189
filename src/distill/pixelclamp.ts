// References that keep their synthetic images in [0, 1] pixels clamp them there (IDC every outer
// iteration, NCFM every iteration); Distillery stores images after the dataset's mean/std
// normalisation, so the same clamp is per channel at (0 - mean) / std and (1 - mean) / std.
import * as E from '../engine/index.js';
import type { Dataset } from '../data/dataset.js';
import type { SyntheticSet } from './synthetic.js';

/** Per-channel [lo, hi] of pixel values 0 and 1 after the dataset's mean/std normalisation; null for ZCA. */
function pixelRange(dataset: Dataset): { lo: E.Tensor; hi: E.Tensor } | null {
  const spec = dataset.preprocessing.toSpec();
  if (spec.zca) return null;
  const c = dataset.imageShape[0];
  const at = (v: number) =>
    E.tensor(
      Float32Array.from({ length: c }, (_, i) => (v - spec.mean[i]) / spec.std[i]),
      { shape: [1, c, 1, 1] },
    );
  return { lo: at(0), hi: at(1) };
}

/**
 * Clamps the stored images (the 'images' group's 4-d tensors) to the pixel range [0, 1] in model-input
 * space, in place; ZCA-whitened data has no such range and is left alone.
 */
export function clampToPixels(dataset: Dataset, synthetic: SyntheticSet): void {
  const range = pixelRange(dataset);
  if (!range) return;
  E.noGrad(() =>
    E.tidy(() => {
      for (const t of synthetic.groups.images)
        if (t.ndim === 4) t.copy_(E.maximum(E.minimum(t, range.hi), range.lo));
    }),
  );
  range.lo.dispose();
  range.hi.dispose();
}
