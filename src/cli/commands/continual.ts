// `distillery continual`: class-incremental learning with random, herding or distilled memories.
import { join } from 'node:path';
import { makeDirectory, writeFileAtomic } from '../../engine/files.js';
import { loadDataset } from '../../data/registry.js';
import { continualLearning } from '../../apps/continual.js';
import { AppError } from '../../apps/sets.js';
import { renderContinualReport } from '../../report/continual.js';
import { parsePrecision, scoreText, UsageError } from '../output.js';

export interface ContinualCommandOptions {
  dataset: string;
  stages: number;
  ipc: number;
  memories: string;
  runs: number;
  epochs: number;
  seed: number;
  precision: string;
  iterations?: number;
  quick?: boolean;
  out: string;
}

export async function continualCommand(o: ContinualCommandOptions): Promise<void> {
  const dataset = loadDataset(o.dataset);
  // quick: short distillations and evaluations, one run (minutes here).
  const settings = o.quick
    ? { runs: 1, epochs: Math.min(o.epochs, 50), iterations: o.iterations ?? 50 }
    : { runs: o.runs, epochs: o.epochs, iterations: o.iterations };
  makeDirectory(o.out);
  try {
    const r = await continualLearning(dataset, {
      stages: o.stages,
      ipc: o.ipc,
      memories: o.memories.split(',').filter(Boolean),
      runs: settings.runs,
      seed: o.seed,
      epochs: settings.epochs,
      precision: parsePrecision(o.precision),
      preset: 'quick',
      overrides: settings.iterations ? { iterations: settings.iterations } : {},
      workDir: join(o.out, 'runs'),
      log: (line) => console.log(line),
    });
    writeFileAtomic(join(o.out, 'continual.json'), JSON.stringify(r, null, 2) + '\n');
    writeFileAtomic(join(o.out, 'continual.html'), renderContinualReport(r));
    console.log('');
    for (const [m, scores] of Object.entries(r.accuracy))
      console.log(`${m.padEnd(10)} ${scores.map((s) => scoreText(s)).join(' | ')}`);
    console.log(`Results: ${join(o.out, 'continual.json')}; chart: ${join(o.out, 'continual.html')}`);
  } catch (e) {
    if (e instanceof AppError) throw new UsageError(e.message);
    throw e;
  }
}
