// `distillery coreset`: a coreset baseline (random, herding, k-center, forgetting)
// saved as an artifact, so it is evaluated exactly like a distilled set.
import { join } from 'node:path';
import * as E from '../../engine/index.js';
import { saveArtifact } from '../../artifact/artifact.js';
import { loadDataset } from '../../data/registry.js';
import { CORESET_METHODS, selectCoreset, trainFeatureNet, type CoresetMethod } from '../../coreset/index.js';
import { createReporter, UsageError } from '../output.js';

export interface CoresetCommandOptions {
  dataset: string;
  method: string;
  ipc: number;
  out?: string;
  featureEpochs: number;
  seed: number;
  dataDir?: string;
  json?: boolean;
}

export function coresetCommand(o: CoresetCommandOptions): string {
  if (!(CORESET_METHODS as readonly string[]).includes(o.method)) {
    throw new UsageError(`unknown coreset method '${o.method}' (expected ${CORESET_METHODS.join(', ')})`);
  }
  const method = o.method as CoresetMethod;
  const out = createReporter(o.json ?? false);
  const dataset = loadDataset(o.dataset, { dataDir: o.dataDir });
  if (o.ipc > dataset.smallestClassSize) {
    throw new UsageError(
      `--ipc ${o.ipc} is larger than the smallest class of ${dataset.name} (${dataset.smallestClassSize} images)`,
    );
  }
  const gen = new E.Generator(o.seed);
  let feature;
  if (method !== 'random') {
    out.info(
      `Training a ConvNet on all ${dataset.train.images.size(0)} training images for ${o.featureEpochs} epochs (the embedding ${method} selects with)`,
    );
    const bar = out.progress('feature network', o.featureEpochs);
    feature = trainFeatureNet(dataset, gen, {
      epochs: o.featureEpochs,
      onEpoch: (e, loss) => bar.update(e + 1, { status: `loss ${loss.toFixed(3)}` }),
    });
    bar.stop();
  }
  const indices = selectCoreset(method, dataset, o.ipc, gen, feature);
  if (feature)
    for (const t of [...feature.state.params.values(), ...feature.state.buffers.values()]) t.dispose();
  const dir =
    o.out ??
    join('runs', `coreset-${method}-${dataset.name.replace(/[^\w.-]+/g, '_')}-ipc${o.ipc}-seed${o.seed}`);
  const subset = dataset.gather(indices);
  saveArtifact(dir, dataset, subset.images, subset.labels, {
    method: `coreset:${method}`,
    config: { method, ipc: o.ipc, featureEpochs: method === 'random' ? 0 : o.featureEpochs, indices },
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
