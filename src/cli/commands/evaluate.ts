// `distillery eval <artifact>`: the evaluation protocol on a distilled set, next
// to the random real subset of the same size and the full training set.
import { loadArtifact } from '../../artifact/artifact.js';
import { loadDataset } from '../../data/registry.js';
import {
  defaultProtocol,
  evaluateSet,
  fullDataBaseline,
  randomSubsetBaseline,
  type Score,
} from '../../eval/index.js';
import { createReporter, parsePrecision, pct } from '../output.js';

export interface EvalCommandOptions {
  models?: string;
  runs: number;
  epochs?: number;
  augment: boolean;
  precision: string;
  baselines: boolean;
  fullEpochs: number;
  seed: number;
  dataDir?: string;
  json?: boolean;
}

function fmt(s: Score | undefined): string {
  return s ? `${pct(s.mean)} +- ${pct(s.std)}` : '-';
}

export function evalCommand(artifactDir: string, o: EvalCommandOptions): void {
  const out = createReporter(o.json ?? false);
  const precision = parsePrecision(o.precision);
  // Peek at the artifact's meta first: the dataset is loaded with the artifact's own preprocessing.
  const probe = loadArtifact(artifactDir);
  const dataset = loadDataset(probe.meta.dataset.name, {
    dataDir: o.dataDir,
    preprocessing: probe.preprocessing,
  });
  const art = loadArtifact(artifactDir, dataset);
  const models = o.models
    ? o.models
        .split(',')
        .map((m) => m.trim())
        .filter(Boolean)
    : [art.meta.model];
  const protocol = {
    ...defaultProtocol(dataset.name, { augment: o.augment, precision }),
    ...(o.epochs ? { epochs: o.epochs } : {}),
  };
  out.info(
    `Evaluating ${artifactDir}: ${art.meta.method} on ${dataset.name}, ${art.meta.ipc} images per class, ${art.meta.labels} labels${art.lr ? `, learned lr ${art.lr.toPrecision(4)}` : ''}`,
  );
  out.info(
    `Protocol: ${protocol.epochs} epochs, lr ${art.lr ?? protocol.lr}, augmentation ${protocol.augment}, ${protocol.precision}; ${o.runs} networks per model`,
  );
  // The full-data baseline trains one network per model (it is the expensive one, and cached).
  const total = models.length * (o.runs * (o.baselines ? 2 : 1) + (o.baselines ? 1 : 0));
  const bar = out.progress('training networks', total);
  let done = 0;
  const onRun = (model: string, run: number, acc: number) => {
    bar.update(++done, { status: `${model} #${run + 1}: ${pct(acc)}%` });
    out.event('run', { model, run, accuracy: acc });
  };
  const opts = { models, runs: o.runs, protocol, seed: o.seed, onRun };
  const distilled = evaluateSet(
    dataset,
    { images: art.images, labels: art.labels, lr: art.lr ?? undefined },
    opts,
  );
  const random = o.baselines ? randomSubsetBaseline(dataset, art.meta.ipc, opts) : null;
  const full = o.baselines ? fullDataBaseline(dataset, { ...opts, runs: 1, fullEpochs: o.fullEpochs }) : null;
  bar.stop();
  const lines = [
    `| model | ${art.meta.method} (ipc ${art.meta.ipc}) | random subset (ipc ${art.meta.ipc}) | full data (${o.fullEpochs} epochs, 1 network) |`,
    '|---|---|---|---|',
  ];
  for (const m of models)
    lines.push(`| ${m} | ${fmt(distilled[m])} | ${fmt(random?.[m])} | ${fmt(full?.[m])} |`);
  out.result(lines.join('\n'), {
    artifact: artifactDir,
    protocol,
    distilled,
    randomSubset: random,
    fullData: full,
  });
  for (const t of [art.images, art.labels, probe.images, probe.labels]) t.dispose();
  dataset.dispose();
}
