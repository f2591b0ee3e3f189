// `distillery privacy`: membership-inference attacks on networks trained on real members, a random
// member subset and sets distilled from the members.
import { join } from 'node:path';
import { makeDirectory, writeFileAtomic } from '../../engine/files.js';
import { loadDataset } from '../../data/registry.js';
import { AppError } from '../../apps/sets.js';
import { membershipPrivacy } from '../../apps/privacy.js';
import { renderPrivacyReport } from '../../report/privacy.js';
import { parsePrecision, pct, UsageError } from '../output.js';

export interface PrivacyCommandOptions {
  dataset: string;
  targets: string;
  ipc: number;
  poolPerClass: number;
  shadows: number;
  epochs: number;
  augment: boolean;
  model?: string;
  iterations?: number;
  precision: string;
  seed: number;
  quick?: boolean;
  out: string;
}

export async function privacyCommand(o: PrivacyCommandOptions): Promise<void> {
  const precision = parsePrecision(o.precision);
  // quick: a small pool, 2 shadows, short trainings and distillations (minutes here).
  const q = o.quick
    ? {
        poolPerClass: Math.min(o.poolPerClass, 100),
        shadows: 2,
        epochs: Math.min(o.epochs, 30),
        iterations: o.iterations ?? 50,
      }
    : o;
  const targets = o.targets
    .split(',')
    .map((t) => t.trim())
    .filter(Boolean);
  try {
    const dataset = loadDataset(o.dataset);
    makeDirectory(o.out);
    console.log(
      `Membership inference on ${dataset.name}: a pool of ${q.poolPerClass} training images per class, half of each class the target's members; ` +
        `targets ${targets.join(', ')} (sets of ${o.ipc} images per class); ${q.shadows} shadow pipelines per target; ${q.epochs + 1} epochs per network`,
    );
    const r = await membershipPrivacy(dataset, {
      targets,
      poolPerClass: q.poolPerClass,
      ipc: o.ipc,
      shadows: q.shadows,
      epochs: q.epochs,
      augment: o.augment,
      model: o.model,
      precision,
      seed: o.seed,
      preset: 'quick',
      overrides: q.iterations ? { iterations: q.iterations } : {},
      workDir: join(o.out, 'runs'),
      log: (line) => console.log(line),
    });
    dataset.dispose();
    writeFileAtomic(join(o.out, 'privacy.json'), JSON.stringify(r, null, 2) + '\n');
    writeFileAtomic(join(o.out, 'privacy.html'), renderPrivacyReport(r));
    console.log('');
    console.log(`${r.members} members, ${r.nonMembers} non-members; AUC 0.5 is chance`);
    console.log(
      '| target | images | test acc | loss AUC | loss TPR@1% | LiRA AUC | LiRA TPR@1% | LiRA TPR@0.1% |',
    );
    console.log('|---|---:|---:|---:|---:|---:|---:|---:|');
    for (const [name, t] of Object.entries(r.targets)) {
      const { loss, lira } = t.attacks;
      console.log(
        `| ${name} | ${t.trainImages} | ${pct(t.testAccuracy)} | ${loss.auc.toFixed(3)} | ${pct(loss.tprAt1)} | ${lira.auc.toFixed(3)} | ${pct(lira.tprAt1)} | ${pct(lira.tprAt01)} |`,
      );
    }
    console.log(`Results: ${join(o.out, 'privacy.json')}; chart: ${join(o.out, 'privacy.html')}`);
  } catch (e) {
    if (e instanceof AppError) throw new UsageError(e.message);
    throw e;
  }
}
