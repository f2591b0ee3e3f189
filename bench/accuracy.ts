// Accuracy benchmark on a CPU budget: DM and the coreset baselines (random,
// herding, k-center, forgetting) at IPC 1 and 10, all evaluated with the same
// protocol (ConvNet-3, DSA, `--epochs`, `--runs` networks each), next to a
// full-data ConvNet. Prints a markdown table; every number is measured here.
//
//   npm run bench:accuracy -- --dataset mnist --iterations 500 --batch-real 64 --epochs 300 --runs 3 [--methods random,dm]
import * as E from '../src/engine/index.js';
import { loadDataset } from '../src/data/registry.js';
import { selectCoreset, trainFeatureNet, type FeatureNet } from '../src/coreset/index.js';
import { defaultProtocol, evaluateSet, type Score } from '../src/eval/index.js';
import { contextWithOptimizer } from '../src/distill/method.js';
import { dm } from '../src/distill/methods/dm.js';
import { SyntheticSet } from '../src/distill/synthetic.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

const datasetName = arg('--dataset', 'mnist');
const iterations = Number(arg('--iterations', '500'));
const batchReal = Number(arg('--batch-real', '64'));
const epochs = Number(arg('--epochs', '300'));
const runs = Number(arg('--runs', '3'));
const fullEpochs = Number(arg('--full-epochs', '2'));
const ipcs = arg('--ipc', '1,10').split(',').map(Number);
// Which columns to run (coresets other than random need the full-data selection network).
const columns = arg('--methods', 'random,herding,kcenter,forgetting,dm').split(',');
const coresets = (['random', 'herding', 'kcenter', 'forgetting'] as const).filter((m) => columns.includes(m));
const needsFeature = coresets.some((m) => m !== 'random');

const t0 = performance.now();
const dataset = loadDataset(datasetName);
const protocol = { ...defaultProtocol(dataset.name), epochs };
const evalOpts = { models: ['ConvNet'], runs, protocol, seed: 0 };
const fmt = (s: Score) => `${(100 * s.mean).toFixed(2)} +- ${(100 * s.std).toFixed(2)}`;
const log = (line: string) => console.error(`[${((performance.now() - t0) / 60000).toFixed(1)} min] ${line}`);

let feature: FeatureNet | undefined;
let full: Record<string, Score> | null = null;
if (needsFeature) {
  log(
    `feature network for herding/k-center/forgetting: ConvNet, ${fullEpochs} epochs on the full training set`,
  );
  feature = trainFeatureNet(dataset, new E.Generator(1), { epochs: fullEpochs });
  full = evaluateSet(dataset, dataset.train, {
    ...evalOpts,
    runs: 1,
    protocol: { ...protocol, epochs: fullEpochs, augment: 'none' },
  });
  log(`full data: ${fmt(full.ConvNet)}`);
}

const rows: string[] = [];
for (const ipc of ipcs) {
  const scores: Record<string, Score> = {};
  for (const method of coresets) {
    const subset = dataset.gather(selectCoreset(method, dataset, ipc, new E.Generator(2), feature));
    scores[method] = evaluateSet(dataset, subset, evalOpts).ConvNet;
    log(`ipc ${ipc} ${method}: ${fmt(scores[method])}`);
  }
  if (columns.includes('dm')) {
    const gen = new E.Generator(3);
    const synthetic = SyntheticSet.create(dataset, ipc, 'real', gen);
    const opt = new E.SGD(synthetic.learnable, { lr: 1, momentum: 0.5 });
    const config = dm.schema.parse({ batchReal });
    const ctx = contextWithOptimizer({ dataset, synthetic, gen, model: 'ConvNet' }, opt);
    for (let it = 0; it < iterations; it++) {
      dm.step(ctx, config, it);
    }
    const { images, labels } = synthetic.decode();
    scores.dm = evaluateSet(dataset, { images: images.detach(), labels }, evalOpts).ConvNet;
    log(`ipc ${ipc} dm: ${fmt(scores.dm)}`);
  }
  const cell = (m: string) => (scores[m] ? fmt(scores[m]) : 'not run');
  rows.push(
    `| ${ipc} | ${cell('random')} | ${cell('herding')} | ${cell('kcenter')} | ${cell('forgetting')} | ${cell('dm')} |`,
  );
}

console.log(
  `${dataset.name}: ConvNet-3 test accuracy (%), ${runs} networks x ${epochs} epochs with DSA each; DM ${iterations} iterations, real batch ${batchReal}/class; ${full ? `coresets on a ConvNet trained ${fullEpochs} epochs on all data (full-data accuracy ${fmt(full.ConvNet)}, 1 network, ${fullEpochs} epochs, no augmentation); ` : ''} ${((performance.now() - t0) / 60000).toFixed(0)} min`,
);
console.log('| ipc | random | herding | k-center | forgetting | DM |');
console.log('|---:|---|---|---|---|---|');
for (const r of rows) console.log(r);
