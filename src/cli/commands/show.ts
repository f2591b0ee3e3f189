// `distillery show <artifact>`: the artifact's image grid (re-rendered if missing).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadArtifact } from '../../artifact/artifact.js';
import { GRID_COLUMNS, gridImages, gridPng } from '../../artifact/grid.js';
import { writeFileAtomic } from '../../engine/files.js';

export function showCommand(dir: string, o: { open?: boolean }): void {
  const path = join(dir, 'grid.png');
  // Validated even when the grid exists: a grid beside a broken artifact is not a good artifact.
  const art = loadArtifact(dir);
  try {
    if (!existsSync(path))
      writeFileAtomic(
        path,
        gridPng(
          art.preprocessing.invert(
            gridImages(art.images, art.meta.dataset.classes.length, art.meta.decodedPerClass),
          ),
          art.meta.dataset.classes.length,
          Math.min(art.meta.decodedPerClass, GRID_COLUMNS),
        ),
      );
  } finally {
    art.images.dispose();
    art.labels.dispose();
    art.labelTargets?.dispose();
  }
  console.log(path);
  if (o.open)
    spawn('xdg-open', [path], { detached: true, stdio: 'ignore' })
      .on('error', () => console.error('distillery: no xdg-open here; open the file above yourself'))
      .unref();
}
