// `distillery datasets`: what data is available here, what is missing and how to get it.
import { datasetAvailability } from '../../data/registry.js';
import { createReporter } from '../output.js';

export function datasetsCommand(o: { dataDir?: string; json?: boolean }): void {
  const out = createReporter(o.json ?? false);
  const rows = datasetAvailability(o.dataDir);
  const text = [
    ...rows.map((r) => `${r.available ? 'available' : 'missing  '}  ${r.name.padEnd(14)} ${r.detail}`),
    '',
    'Custom data: --dataset PATH for an image folder (one subfolder per class, PNG/JPEG; optional train/ and test/)',
    '             or a .safetensors file with train.images/train.labels/test.images/test.labels (or images/labels).',
  ].join('\n');
  out.result(text, { datasets: rows });
}
