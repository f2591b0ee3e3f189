// Device names: 'cpu', 'cuda', 'cuda:N'. Checked here so that a wrong name or a
// missing GPU gives one clear sentence instead of libtorch's dispatcher dump.
import { EngineError } from './errors.js';
import { native } from './native.js';

export type Device = 'cpu' | 'cuda' | `cuda:${number}`;

export function cudaAvailable(): boolean {
  return native.cudaAvailable();
}

export function cudaDeviceCount(): number {
  return native.cudaDeviceCount();
}

export function checkDevice(op: string, device: string | undefined): Device {
  if (device === undefined || device === 'cpu') return 'cpu';
  const m = /^cuda(?::(\d+))?$/.exec(device);
  if (!m) throw new EngineError(op, `unknown device '${device}' (expected 'cpu', 'cuda' or 'cuda:N')`);
  if (!native.cudaAvailable()) {
    throw new EngineError(
      op,
      `device '${device}' is not available: the linked libtorch has no CUDA support or no GPU is visible ` +
        '(rebuild the addon against a CUDA LibTorch with `LIBTORCH=/path/to/libtorch npm run build:native`)',
    );
  }
  const index = m[1] === undefined ? 0 : Number(m[1]);
  if (index >= native.cudaDeviceCount()) {
    throw new EngineError(
      op,
      `device '${device}' does not exist: ${native.cudaDeviceCount()} CUDA device(s) visible`,
    );
  }
  return device as Device;
}
