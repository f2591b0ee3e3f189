// What every dataset reader produces: raw uint8 pixels in NCHW order plus labels.
export interface RawSplit {
  /** Pixels, N x C x H x W, row-major. */
  pixels: Uint8Array;
  labels: Int32Array;
}

export interface RawDataset {
  name: string;
  classes: string[];
  shape: [number, number, number];
  train: RawSplit;
  test: RawSplit;
  /** Files read, for the checksum and the run record. */
  files: string[];
  /** Standard per-channel mean/std of the dataset, or null to compute them from the training split. */
  stats: { mean: number[]; std: number[] } | null;
}

/** Rearranges N x H x W x C pixels into N x C x H x W. */
export function hwcToChw(src: Uint8Array, n: number, h: number, w: number, c: number): Uint8Array {
  const out = new Uint8Array(src.length);
  const plane = h * w;
  for (let i = 0; i < n; i++) {
    const base = i * plane * c;
    for (let p = 0; p < plane; p++) {
      for (let ch = 0; ch < c; ch++) out[base + ch * plane + p] = src[base + p * c + ch];
    }
  }
  return out;
}
