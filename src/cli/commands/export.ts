// `distillery export <artifact> --format npy|png`: the distilled set as files NumPy and PyTorch read.
import { join } from 'node:path';
import { loadArtifact } from '../../artifact/artifact.js';
import { exportNpy, exportPng } from '../../artifact/export.js';
import { createReporter, UsageError } from '../output.js';

export function exportCommand(
  artifactDir: string,
  o: { format: string; out?: string; json?: boolean },
): void {
  const out = createReporter(o.json ?? false);
  if (o.format !== 'npy' && o.format !== 'png')
    throw new UsageError(`--format must be npy or png, got '${o.format}'`);
  const art = loadArtifact(artifactDir);
  try {
    const dir = o.out ?? join(artifactDir, o.format);
    const files = o.format === 'npy' ? exportNpy(art, dir) : exportPng(art, dir);
    const hint =
      o.format === 'npy'
        ? `NumPy: x = np.load('${join(dir, 'images.npy')}'); y = np.load('${join(dir, 'labels.npy')}')`
        : `${files.length} images, one folder per class`;
    out.result(`Wrote ${files.length} file(s) to ${dir}. ${hint}`, { dir, files });
  } finally {
    art.images.dispose();
    art.labels.dispose();
    art.labelTargets?.dispose();
  }
}
