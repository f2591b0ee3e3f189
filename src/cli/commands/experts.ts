// `distillery experts`: train expert trajectories for MTT/TESLA (resumable).
import { join } from 'node:path';
import { loadDataset } from '../../data/registry.js';
import { ExpertError, trainExperts } from '../../distill/experts.js';
import { createNetwork, ModelSpecError } from '../../models/index.js';
import { createReporter, parsePrecision, UsageError } from '../output.js';
import { ProcessGroup, worldFromEnv } from '../../engine/index.js';

export interface ExpertsCommandOptions {
  dataset: string;
  model: string;
  experts: number;
  epochs: number;
  lr: number;
  batch: number;
  augment: boolean;
  seed: number;
  out?: string;
  dataDir?: string;
  /** ZCA whitening eps (the trajectories then only fit runs with the same --zca). */
  zca?: number;
  /** float32 | bfloat16 | auto (see `distillery experts --help`). */
  precision: string;
  /** 'sgd' or 'gsam' (FTD's flat experts, with rho and gsamAlpha). */
  optimizer?: string;
  rho?: number;
  gsamAlpha?: number;
  json?: boolean;
}

export function expertsCommand(o: ExpertsCommandOptions): string {
  const out = createReporter(o.json ?? false);
  parsePrecision(o.precision); // bad values fail before the dataset loads
  const optimizer = o.optimizer ?? 'sgd';
  if (optimizer !== 'sgd' && optimizer !== 'gsam')
    throw new UsageError(`--optimizer must be sgd or gsam, got '${optimizer}'`);
  const gsam =
    optimizer === 'gsam' ? { rho: o.rho ?? 0.01, alpha: o.gsamAlpha ?? 0.4, adaptive: true } : undefined;
  const dataset = loadDataset(o.dataset, { dataDir: o.dataDir, zca: o.zca ?? null });
  try {
    createNetwork(o.model, dataset.imageShape, dataset.numClasses);
  } catch (e) {
    if (e instanceof ModelSpecError) throw new UsageError(e.message);
    throw e;
  }
  const dir =
    o.out ??
    join(
      'experts',
      `${dataset.name.replace(/[^\w.-]+/g, '_')}-${o.model}${o.zca ? '-zca' : ''}${gsam ? '-gsam' : ''}`,
    );
  out.info(
    `Training ${o.experts} ${o.model} expert(s)${gsam ? ` with GSAM (rho ${gsam.rho}, alpha ${gsam.alpha})` : ''} for ${o.epochs} epochs on ${dataset.train.images.size(0)} ${dataset.name} images into ${dir}`,
  );
  let bar: ReturnType<typeof out.progress> | null = null;
  // Under `distillery launch` (or torchrun): the experts are shared among the ranks.
  const env = worldFromEnv();
  const world = env && env.worldSize > 1 ? ProcessGroup.fromEnv() : undefined;
  try {
    trainExperts(
      dataset,
      dir,
      {
        model: o.model,
        experts: o.experts,
        epochs: o.epochs,
        lr: o.lr,
        batchSize: o.batch,
        augment: o.augment,
        seed: o.seed,
        precision: parsePrecision(o.precision),
        gsam,
      },
      {
        onStart: ({ total, done }) => {
          if (done > 0) out.info(`Resuming: ${done} of ${total} epoch checkpoints already written`);
          bar = out.progress('experts', total);
          bar.update(done);
        },
        onEpoch: ({ expert, epoch, loss, done }) => {
          // Epoch 0 is the initial weights: nothing trained yet, no loss to show.
          const what = epoch === 0 ? 'initial weights' : `loss ${loss.toFixed(3)}`;
          bar?.update(done, { status: `expert ${expert} epoch ${epoch} ${what}` });
          out.event('epoch', { expert, epoch, loss });
        },
      },
      world,
    );
  } catch (e) {
    if (e instanceof ExpertError) throw new UsageError(e.message);
    throw e;
  } finally {
    (bar as ReturnType<typeof out.progress> | null)?.stop();
    world?.close();
  }
  out.result(`Wrote ${o.experts} expert trajectories to ${dir}`, {
    experts: dir,
    count: o.experts,
    epochs: o.epochs,
  });
  return dir;
}
