// `distillery nas`: small sets as proxies for ranking the architectures of a ConvNet search space.
import { join } from 'node:path';
import { makeDirectory, writeFileAtomic } from '../../engine/files.js';
import { loadArtifact } from '../../artifact/artifact.js';
import { loadDataset } from '../../data/registry.js';
import { AppError, sourceKind } from '../../apps/sets.js';
import { DC_SPACE, architectureSearch, searchSpace, type SpaceAxes } from '../../apps/nas.js';
import { renderNasReport } from '../../report/nas.js';
import { duration, parsePrecision, pct, UsageError } from '../output.js';

export interface NasCommandOptions {
  dataset: string;
  proxies: string;
  ipc: number;
  architectures?: number;
  depths?: string;
  widths?: string;
  activations?: string;
  norms?: string;
  pools?: string;
  proxyEpochs: number;
  realEpochs: number;
  realPerClass?: number;
  valPerClass: number;
  iterations?: number;
  precision: string;
  seed: number;
  quick?: boolean;
  out: string;
}

function list(value: string | undefined, fallback: string[]): string[] {
  return value === undefined
    ? fallback
    : value
        .split(',')
        .map((v) => v.trim())
        .filter(Boolean);
}

function axes(o: NasCommandOptions): SpaceAxes {
  const depths = list(o.depths, DC_SPACE.depths.map(String)).map(Number);
  // quick: the narrow half of the widths (a width-256 ConvNet without pooling costs minutes per epoch here).
  const widths = list(o.widths, (o.quick ? [32, 64] : DC_SPACE.widths).map(String)).map(Number);
  for (const [flag, values] of [
    ['--depths', depths],
    ['--widths', widths],
  ] as const)
    if (values.some((v) => !Number.isInteger(v) || v < 1))
      throw new UsageError(`${flag} takes positive integers separated by commas`);
  return {
    depths,
    widths,
    activations: list(o.activations, DC_SPACE.activations),
    norms: list(o.norms, DC_SPACE.norms),
    pools: list(o.pools, DC_SPACE.pools),
  };
}

/** The dataset, loaded with the preprocessing of the artifacts among the proxies (all the same). */
function datasetFor(name: string, proxies: string[]) {
  const preps = proxies.filter((p) => sourceKind(p) === 'artifact').map((p) => loadArtifact(p));
  for (const a of preps)
    if (a.meta.dataset.name !== name)
      throw new UsageError(`artifact for ${a.meta.dataset.name} given, but --dataset is ${name}`);
  const prep = preps[0]?.preprocessing;
  if (preps.some((a) => !a.preprocessing.equals(prep!)))
    throw new UsageError(
      'the artifacts among --proxies were made with different preprocessing; rank them separately',
    );
  for (const a of preps) for (const t of [a.images, a.labels, a.labelTargets]) t?.dispose();
  return loadDataset(name, prep ? { preprocessing: prep } : {});
}

export async function nasCommand(o: NasCommandOptions): Promise<void> {
  const precision = parsePrecision(o.precision);
  // quick: 8 architectures, short trainings on a part of the real data (minutes here).
  const q = o.quick
    ? {
        architectures: o.architectures ?? 8,
        proxyEpochs: Math.min(o.proxyEpochs, 50),
        realEpochs: Math.min(o.realEpochs, 1),
        realPerClass: o.realPerClass ?? 200,
        valPerClass: Math.min(o.valPerClass, 50),
        iterations: o.iterations ?? 50,
      }
    : { ...o, architectures: o.architectures ?? 32 };
  const proxies = list(o.proxies, []);
  try {
    const space = searchSpace(axes(o), q.architectures, o.seed);
    const dataset = datasetFor(o.dataset, proxies);
    makeDirectory(o.out);
    console.log(
      `Ranking ${space.length} architectures on ${dataset.name} with ${proxies.join(', ')} at ${o.ipc} images per class: ` +
        `${q.proxyEpochs + 1} epochs on each proxy, ${q.realEpochs + 1} on ${q.realPerClass ? `${q.realPerClass} real images per class` : 'the real training part'} (cached), ` +
        `${q.valPerClass} training images per class held out for validation`,
    );
    const r = await architectureSearch(dataset, {
      space,
      proxies,
      ipc: o.ipc,
      proxyEpochs: q.proxyEpochs,
      realEpochs: q.realEpochs,
      realPerClass: q.realPerClass,
      valPerClass: q.valPerClass,
      seed: o.seed,
      precision,
      preset: 'quick',
      overrides: q.iterations ? { iterations: q.iterations } : {},
      workDir: join(o.out, 'runs'),
      log: (line) => console.log(line),
    });
    dataset.dispose();
    writeFileAtomic(join(o.out, 'nas.json'), JSON.stringify(r, null, 2) + '\n');
    writeFileAtomic(join(o.out, 'nas.html'), renderNasReport(r));
    console.log('');
    console.log(
      `real best: ${r.best.spec} (test ${pct(r.best.realTest)}%), real training ${duration(r.realSeconds)}`,
    );
    console.log('| proxy | Spearman | Kendall | picks | its real test | real rank | time |');
    console.log('|---|---:|---:|---|---:|---:|---:|');
    for (const [name, p] of Object.entries(r.proxies))
      console.log(
        `| ${name} | ${p.spearman.toFixed(3)} | ${p.kendall.toFixed(3)} | ${p.selected.spec} | ${pct(p.selected.realTest)} | ${p.selected.realRank} | ${duration(p.totalSeconds)} |`,
      );
    console.log(`Results: ${join(o.out, 'nas.json')}; chart: ${join(o.out, 'nas.html')}`);
  } catch (e) {
    if (e instanceof AppError) throw new UsageError(e.message);
    throw e;
  }
}
