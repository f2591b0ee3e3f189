// Accuracy benchmark on a CPU budget: DM, DC, DSA, MTT, TESLA and the coreset
// baselines (random, herding, k-center, forgetting) at IPC 1 and 10, all evaluated
// with the same protocol (ConvNet-3, DSA, `--epochs`, `--runs` networks each), next
// to a full-data ConvNet. Prints a markdown table; every number is measured here.
// DM/DC/DSA start from their own default init and image optimizer (DM: real, lr 1;
// DC: noise, lr 0.1; DSA: real, lr 0.1); MTT/TESLA take the dataset x IPC `quick`
// preset (image lr, steps, epochs) with `--tm-iterations` and the experts in
// `--experts`, and are evaluated with their learned lr (TESLA: its soft labels).
//
//   npm run bench:accuracy -- --dataset mnist --iterations 500 --batch-real 64 --epochs 300 --runs 3
//       [--methods random,dm,dc,dsa] [--gm-iterations 200,20] [--inner-loop 50]
//       [--methods init,mtt,tesla --experts experts/mnist-ConvNet --tm-iterations 200,50]
//       [--real-dtype float32|bfloat16|auto]  (DM/DC/DSA's real-side precision; default: each method's)
//       [--eval-precision float32|bfloat16|auto]  (the evaluation networks' training; default float32)
import * as E from '../src/engine/index.js';
import { loadDataset } from '../src/data/registry.js';
import { selectCoreset, trainFeatureNet, type FeatureNet } from '../src/coreset/index.js';
import { defaultProtocol, evaluateSet, type Score } from '../src/eval/index.js';
import { deepMerge, loadPreset, resolveConfig } from '../src/distill/config.js';
import { contextWithOptimizer } from '../src/distill/method.js';
import type { AnyMethod } from '../src/distill/method.js';
import { dc, dsa } from '../src/distill/methods/dc.js';
import { precisionOption } from '../src/distill/precision.js';
import { dm } from '../src/distill/methods/dm.js';
import { mtt, tesla } from '../src/distill/methods/mtt.js';
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
// MTT/TESLA iterations for each IPC, and their expert trajectories.
const tmIterations = arg('--tm-iterations', '200,50').split(',').map(Number);
const expertsDir = arg('--experts', '');
// DM/DC/DSA methodConfig.realDtype; unset: each method's default (auto).
const realDtype = process.argv.includes('--real-dtype') ? arg('--real-dtype', '') : undefined;
// Which columns to run (coresets other than random need the full-data selection network).
const columns = arg('--methods', 'random,herding,kcenter,forgetting,dm,dc,dsa').split(',');
const distillers = [dm, dc, dsa, mtt, tesla].filter((m) => columns.includes(m.name));
const coresets = (['random', 'herding', 'kcenter', 'forgetting'] as const).filter((m) => columns.includes(m));
// 'init': the random real images every real-initialised method starts from (seed 3), evaluated
// as they are; at IPC 1 one draw of 10 images differs from another by up to ~30 points, so this,
// not the 'random' column (seed 2), is what DM/DSA/MTT/TESLA have improved on or not.
const withInit = columns.includes('init');
const columnNames = [...coresets, ...(withInit ? ['init'] : []), ...distillers.map((m) => m.name)];
const unknown = columns.filter((c) => !columnNames.includes(c));
if (unknown.length) throw new Error(`unknown --methods ${unknown.join(', ')}`);
if (distillers.some((m) => m === mtt || m === tesla) && !expertsDir)
  throw new Error('mtt/tesla need --experts <dir> (made by `distillery experts`)');
const needsFeature = coresets.some((m) => m !== 'random');

const t0 = performance.now();
const dataset = loadDataset(datasetName);
const evalPrecision = precisionOption('float32').parse(arg('--eval-precision', 'float32'));
const protocol = { ...defaultProtocol(dataset.name, { precision: evalPrecision }), epochs };
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

const isTrajectoryMatching = (m: AnyMethod) => m === mtt || m === tesla;

/** The method's resolved run config: its defaults, MTT/TESLA's `quick` preset, and this benchmark's settings. */
function runConfig(method: AnyMethod, ipc: number) {
  const ours: Record<string, unknown> = { dataset: dataset.name, method: method.name, ipc };
  if (method === dm) ours.methodConfig = { batchReal, realDtype };
  else if (method === dc || method === dsa) ours.methodConfig = { batchReal, innerLoop, realDtype };
  else ours.methodConfig = { experts: expertsDir };
  const preset = isTrajectoryMatching(method) ? loadPreset(method.name, dataset.name, ipc, 'quick') : null;
  return resolveConfig(preset ? deepMerge(preset, ours) : ours);
}

function distillAndEvaluate(method: AnyMethod, ipc: number, its: number): Score {
  const config = runConfig(method, ipc);
  const gen = new E.Generator(3);
  const synthetic = SyntheticSet.create(dataset, ipc, config.init as InitKind, gen);
  const opt = new E.SGD(synthetic.learnable, config.optimizer);
  const ctx = contextWithOptimizer({ dataset, synthetic, gen, model: 'ConvNet' }, opt);
  method.init?.(ctx, config.methodConfig);
  for (let it = 0; it < its; it++) method.step(ctx, config.methodConfig, it);
  opt.disposeState();
  const { images, labels } = synthetic.decode();
  const lr = synthetic.lr?.item();
  return evaluateSet(dataset, { images: images.detach(), labels: labels.detach(), lr }, evalOpts).ConvNet;
}

const rows: string[] = [];
for (const ipc of ipcs) {
  const scores: Record<string, Score> = {};
  for (const method of coresets) {
    const subset = dataset.gather(selectCoreset(method, dataset, ipc, new E.Generator(2), feature));
    scores[method] = evaluateSet(dataset, subset, evalOpts).ConvNet;
    log(`ipc ${ipc} ${method}: ${fmt(scores[method])}`);
  }
  if (withInit) {
    const start = SyntheticSet.create(dataset, ipc, 'real', new E.Generator(3)).decode();
    scores.init = evaluateSet(
      dataset,
      { images: start.images.detach(), labels: start.labels },
      evalOpts,
    ).ConvNet;
    log(`ipc ${ipc} init (the real images the methods start from): ${fmt(scores.init)}`);
  }
  for (const method of distillers) {
    const perIpc = isTrajectoryMatching(method) ? tmIterations : gmIterations;
    const its = method === dm ? iterations : perIpc[ipcs.indexOf(ipc)];
    scores[method.name] = distillAndEvaluate(method, ipc, its);
    log(`ipc ${ipc} ${method.name} (${its} iterations): ${fmt(scores[method.name])}`);
  }
  rows.push(`| ${ipc} | ${columnNames.map((m) => fmt(scores[m])).join(' | ')} |`);
}

console.log(
  `${dataset.name}: ConvNet-3 test accuracy (%), ${runs} networks x ${epochs} epochs with DSA each (${evalPrecision}); real batch ${batchReal}/class (real-side precision: ${realDtype ?? "each method's default"}); DM ${iterations} iterations; DC/DSA ${gmIterations.join('/')} outer iterations at IPC ${ipcs.join('/')}, inner loop ${innerLoop ?? 'by IPC (reference)'}; MTT/TESLA ${tmIterations.join('/')} iterations (quick presets, experts ${expertsDir || 'none'}); ${full ? `coresets on a ConvNet trained ${fullEpochs} epochs on all data (full-data accuracy ${fmt(full.ConvNet)}, 1 network, ${fullEpochs} epochs, no augmentation); ` : ''} ${((performance.now() - t0) / 60000).toFixed(0)} min`,
);
console.log(`| ipc | ${columnNames.join(' | ')} |`);
console.log(`|---:|${columnNames.map(() => '---|').join('')}`);
for (const r of rows) console.log(r);
