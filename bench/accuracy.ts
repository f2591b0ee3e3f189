// Accuracy benchmark on a CPU budget: DM, DC, DSA and the coreset baselines
// (random, herding, k-center, forgetting) at IPC 1 and 10, all evaluated with the
// same protocol (ConvNet-3, DSA, `--epochs`, `--runs` networks each), next to a
// full-data ConvNet. Prints a markdown table; every number is measured here.
// Each distillation method starts from its own default init and image optimizer
// (DM: real, lr 1; DC: noise, lr 0.1; DSA: real, lr 0.1).
//
//   npm run bench:accuracy -- --dataset mnist --iterations 500 --batch-real 64 --epochs 300 --runs 3
//       [--methods random,dm,dc,dsa] [--gm-iterations 200,20] [--inner-loop 50]
import * as E from '../src/engine/index.js';
import { loadDataset } from '../src/data/registry.js';
import { selectCoreset, trainFeatureNet, type FeatureNet } from '../src/coreset/index.js';
import { defaultProtocol, evaluateSet, type Score } from '../src/eval/index.js';
import { contextWithOptimizer } from '../src/distill/method.js';
import type { AnyMethod } from '../src/distill/method.js';
import { dc, dsa } from '../src/distill/methods/dc.js';
import { dm } from '../src/distill/methods/dm.js';
import type { InitKind } from '../src/distill/synthetic.js';
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
// DC/DSA outer iterations for each IPC (in --ipc order), and their inner epochs (default: the reference's by IPC).
const gmIterations = arg('--gm-iterations', '200,20').split(',').map(Number);
const innerLoop = process.argv.includes('--inner-loop') ? Number(arg('--inner-loop', '')) : undefined;
// Which columns to run (coresets other than random need the full-data selection network).
const columns = arg('--methods', 'random,herding,kcenter,forgetting,dm,dc,dsa').split(',');
const distillers = [dm, dc, dsa].filter((m) => columns.includes(m.name));
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

function distillAndEvaluate(method: AnyMethod, ipc: number, its: number, config: unknown): Score {
  const gen = new E.Generator(3);
  const defaults = method.defaults as { init: InitKind; optimizer: { lr: number; momentum: number } };
  const synthetic = SyntheticSet.create(dataset, ipc, defaults.init, gen);
  const opt = new E.SGD(synthetic.learnable, defaults.optimizer);
  const ctx = contextWithOptimizer({ dataset, synthetic, gen, model: 'ConvNet' }, opt);
  for (let it = 0; it < its; it++) method.step(ctx, config, it);
  opt.disposeState();
  const { images, labels } = synthetic.decode();
  return evaluateSet(dataset, { images: images.detach(), labels }, evalOpts).ConvNet;
}

const rows: string[] = [];
for (const ipc of ipcs) {
  const scores: Record<string, Score> = {};
  for (const method of coresets) {
    const subset = dataset.gather(selectCoreset(method, dataset, ipc, new E.Generator(2), feature));
    scores[method] = evaluateSet(dataset, subset, evalOpts).ConvNet;
    log(`ipc ${ipc} ${method}: ${fmt(scores[method])}`);
  }
  for (const method of distillers) {
    const its = method === dm ? iterations : gmIterations[ipcs.indexOf(ipc)];
    const config = method.schema.parse(method === dm ? { batchReal } : { batchReal, innerLoop });
    scores[method.name] = distillAndEvaluate(method, ipc, its, config);
    log(`ipc ${ipc} ${method.name} (${its} iterations): ${fmt(scores[method.name])}`);
  }
  const cell = (m: string) => (scores[m] ? fmt(scores[m]) : 'not run');
  rows.push(
    `| ${ipc} | ${cell('random')} | ${cell('herding')} | ${cell('kcenter')} | ${cell('forgetting')} | ${cell('dm')} | ${cell('dc')} | ${cell('dsa')} |`,
  );
}

console.log(
  `${dataset.name}: ConvNet-3 test accuracy (%), ${runs} networks x ${epochs} epochs with DSA each; real batch ${batchReal}/class; DM ${iterations} iterations; DC/DSA ${gmIterations.join('/')} outer iterations at IPC ${ipcs.join('/')}, inner loop ${innerLoop ?? 'by IPC (reference)'}; ${full ? `coresets on a ConvNet trained ${fullEpochs} epochs on all data (full-data accuracy ${fmt(full.ConvNet)}, 1 network, ${fullEpochs} epochs, no augmentation); ` : ''} ${((performance.now() - t0) / 60000).toFixed(0)} min`,
);
console.log('| ipc | random | herding | k-center | forgetting | DM | DC | DSA |');
console.log('|---:|---|---|---|---|---|---|---|');
for (const r of rows) console.log(r);
