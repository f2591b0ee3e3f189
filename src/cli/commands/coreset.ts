// `distillery coreset`: a coreset baseline (random, herding, k-center, forgetting)
// saved as an artifact, so it is evaluated exactly like a distilled set.
import { join } from 'node:path';
import * as E from '../../engine/index.js';
import { saveArtifact } from '../../artifact/artifact.js';
import { loadDataset } from '../../data/registry.js';
import {
  CORESET_METHODS,
  DEEPCORE_SELECTION,
  disposeFeatureNet,
  selectCoreset,
  selectionNetwork,
  type CoresetMethod,
} from '../../coreset/index.js';
import { createReporter, parsePrecision, UsageError } from '../output.js';

export interface CoresetCommandOptions {
  dataset: string;
  method: string;
  ipc: number;
  out?: string;
  featureEpochs: number;
  /** Precision of the selection network's training (float32 | bfloat16 | auto). */
  precision: string;
  seed: number;
  dataDir?: string;
  json?: boolean;
}

export function coresetCommand(o: CoresetCommandOptions): string {
  if (!(CORESET_METHODS as readonly string[]).includes(o.method)) {
    throw new UsageError(`unknown coreset method '${o.method}' (expected ${CORESET_METHODS.join(', ')})`);
  }
  const method = o.method as CoresetMethod;
  const precision = parsePrecision(o.precision);
  const out = createReporter(o.json ?? false);
  const dataset = loadDataset(o.dataset, { dataDir: o.dataDir });
  if (o.ipc > dataset.smallestClassSize) {
    throw new UsageError(
      `--ipc ${o.ipc} is larger than the smallest class of ${dataset.name} (${dataset.smallestClassSize} images)`,
    );
  }
  let feature;
  if (method !== 'random') {
    let bar: ReturnType<typeof out.progress> | null = null;
    feature = selectionNetwork(dataset, o.seed, {
      epochs: o.featureEpochs,
      precision,
      onTrain: (s) => {
        out.info(
          `Training the selection network: ${s.model} on all ${dataset.train.images.size(0)} training images, ${s.epochs} epochs (DeepCore's settings: SGD lr ${s.lr}, Nesterov momentum ${s.momentum}, ${s.precision}); cached for later runs`,
        );
        bar = out.progress('selection network', s.epochs);
      },
      onEpoch: (e, loss) => bar?.update(e + 1, { status: `loss ${loss.toFixed(3)}` }),
    });
    (bar as ReturnType<typeof out.progress> | null)?.stop();
  }
  const indices = selectCoreset(method, dataset, o.ipc, new E.Generator(o.seed), feature);
  if (feature) disposeFeatureNet(feature);
  const dir =
    o.out ??
    join('runs', `coreset-${method}-${dataset.name.replace(/[^\w.-]+/g, '_')}-ipc${o.ipc}-seed${o.seed}`);
  const subset = dataset.gather(indices);
  saveArtifact(dir, dataset, subset.images, subset.labels, {
    method: `coreset:${method}`,
    config: {
      method,
      ipc: o.ipc,
      selection: method === 'random' ? null : { ...DEEPCORE_SELECTION, epochs: o.featureEpochs, precision },
      indices,
    },
    seed: o.seed,
    model: 'ConvNet',
  });
  out.result(`Wrote ${method} coreset (${o.ipc} images per class) to ${dir}`, {
    artifact: dir,
    method,
    ipc: o.ipc,
    indices,
  });
  return dir;
}
