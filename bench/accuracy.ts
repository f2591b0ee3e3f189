// Accuracy benchmark on a CPU budget: DM, DC, DSA, MTT, TESLA and the coreset
// baselines (random, herding, k-center, forgetting) at IPC 1 and 10, all evaluated
// with the same protocol (ConvNet-3, `--eval-augment` (default DSA), `--epochs`, `--runs`
// networks each). Prints a markdown table; every number is measured here.
// - random / init: a fresh draw of real images for every network (two draws of 10 MNIST images
//   differ by up to ~30 points); 'init' draws the way the real-initialised methods start (its
//   draw 0 is their start), 'random' from another stream.
// - herding / k-center / forgetting: select with DeepCore's selection network (40 epochs, cached;
//   `--selection-epochs`, `--selection-precision`), whose full-data test accuracy is printed.
// - DM/DC/DSA start from their own default init and image optimizer (DM: real, lr 1; DC: noise,
//   lr 0.1; DSA: real, lr 0.1); MTT/TESLA take the dataset x IPC `quick` preset (image lr, steps,
//   epochs) with `--tm-iterations` and the experts in `--experts`, and are evaluated with their
//   learned lr. `--sets K` distills K sets (seeds 3..3+K-1) per method, `--runs` networks each.
//
//   npm run bench:accuracy -- --dataset mnist --iterations 500 --batch-real 64 --epochs 300 --runs 3
//       [--methods random,dm,dc,dsa] [--gm-iterations 200,20] [--inner-loop 50] [--sets 1]
//       [--methods init,mtt,tesla --experts experts/mnist-ConvNet --tm-iterations 200,50]
//       [--real-dtype float32|bfloat16|auto]  (DM/DC/DSA's real-side precision; default: each method's)
//       [--eval-precision float32|bfloat16|auto]  (the evaluation networks' training; default float32)
//       [--eval-augment true|false|dc|<protocol string>]  (default true: DSA; dc: DC's protocol)
//       [--set key=value ...]  (any distill-config value for the methods, e.g. methodConfig.synSteps=30)
//       [--methods kip,rfad,frepo,dd --pm-iterations 500,500]  (performance matching, `quick` preset otherwise;
//        the KRR methods' own KRR test accuracy is logged per set; DD unrolls the ConvNet here)
//       [--target-loss argmax,mse,softmax]  (learned regression targets: evaluated under each loss, default softmax;
//        a loss whose training diverges is logged and left out)
//       [--methods idc,idc-i,dm,dm+linba,dm+haba --idc-iterations 10,10]  (method+parameterization columns;
//        IDC/IDC-I take their `quick` preset; parameterization settings with --set parameterization.<key>=...)
import * as E from '../src/engine/index.js';
import { loadDataset } from '../src/data/registry.js';
import { disposeFeatureNet, selectCoreset, selectionNetwork, type FeatureNet } from '../src/coreset/index.js';
import {
  accuracy,
  defaultProtocol,
  evaluateSet,
  evaluateSubsets,
  summarize,
  type Score,
  TARGET_LOSSES,
  DivergedError,
  type TargetLoss,
} from '../src/eval/index.js';
import { deepMerge, layeredConfig } from '../src/distill/config.js';
import type { AnyMethod } from '../src/distill/method.js';
import { cafe, dc, dm, dsa, idc, idcI } from '../src/distill/methods/index.js';
import { METHODS } from '../src/distill/registry.js';
import { precisionOption } from '../src/distill/precision.js';
import { closeSession, newSession, runIterations } from '../src/distill/session.js';
import { ParameterizationError } from '../src/param/index.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

/** Every `--set key=value` as a nested config object (values parsed as JSON where they are JSON). */
function setOverrides(): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  process.argv.forEach((a, i) => {
    if (a !== '--set') return;
    const [path, raw] = [
      process.argv[i + 1].split('=')[0],
      process.argv[i + 1].split('=').slice(1).join('='),
    ];
    let value: unknown = raw;
    try {
      value = JSON.parse(raw);
    } catch {
      // a string
    }
    const keys = path.split('.');
    let node = out;
    for (const k of keys.slice(0, -1)) node = (node[k] ??= {}) as Record<string, unknown>;
    node[keys[keys.length - 1]] = value;
  });
  return out;
}

const datasetName = arg('--dataset', 'mnist');
const iterations = Number(arg('--iterations', '500'));
const batchReal = Number(arg('--batch-real', '64'));
const epochs = Number(arg('--epochs', '300'));
const runs = Number(arg('--runs', '3'));
const sets = Number(arg('--sets', '1'));
const selectionEpochs = Number(arg('--selection-epochs', '40'));
const ipcs = arg('--ipc', '1,10').split(',').map(Number);
// DC/DSA outer iterations for each IPC (in --ipc order), and their inner epochs (default: the reference's by IPC).
const gmIterations = arg('--gm-iterations', '200,20').split(',').map(Number);
const innerLoop = process.argv.includes('--inner-loop') ? Number(arg('--inner-loop', '')) : undefined;
// MTT/TESLA iterations for each IPC, and their expert trajectories.
const tmIterations = arg('--tm-iterations', '200,50').split(',').map(Number);
// IDC / IDC-I outer iterations for each IPC (each: innerLoop matching steps and network updates).
const idcIterations = arg('--idc-iterations', '10,10').split(',').map(Number);
// Performance-matching methods' (KIP, RFAD, FRePo, DD) iterations for each IPC; their `quick` preset otherwise.
const pmIterations = arg('--pm-iterations', '500,500').split(',').map(Number);
// CAFE's iterations for each IPC (its `quick` preset otherwise: adaptive loops bounded at 10 x 10).
const cafeIterations = arg('--cafe-iterations', '10,10').split(',').map(Number);
const expertsDir = arg('--experts', '');
// Sets with learned regression targets (KIP/RFAD/FRePo) are evaluated under each of these losses;
// the first is the column's, the others get their own column 'method (loss)'.
const targetLosses = arg('--target-loss', 'softmax')
  .split(',')
  .map((l) => {
    if (!(TARGET_LOSSES as readonly string[]).includes(l))
      throw new Error(`--target-loss: one of ${TARGET_LOSSES.join(', ')}, got '${l}'`);
    return l as TargetLoss;
  });
// DM/DC/DSA methodConfig.realDtype; unset: each method's default (auto).
const realDtype = process.argv.includes('--real-dtype') ? arg('--real-dtype', '') : undefined;
const overrides = setOverrides();
// Which columns to run (coresets other than random need the selection network). A method column may
// name a parameterization: 'dm+linba' is DM on LinBa (its settings: --set parameterization.<key>=...).
const columns = arg('--methods', 'random,herding,kcenter,forgetting,dm,dc,dsa').split(',');
interface Distiller {
  column: string;
  method: AnyMethod;
  parameterization?: string;
}
const distillers: Distiller[] = columns.flatMap((c) => {
  const [name, param] = c.split('+');
  const method = METHODS.find((m) => m.name === name);
  return method ? [{ column: c, method, parameterization: param }] : [];
});
const coresets = (['random', 'herding', 'kcenter', 'forgetting'] as const).filter((m) => columns.includes(m));
const withInit = columns.includes('init');
// Grows by 'method (loss)' columns when several --target-loss are evaluated.
const columnNames = [...coresets, ...(withInit ? ['init'] : []), ...distillers.map((d) => d.column)];
const unknown = columns.filter((c) => !columnNames.includes(c));
if (unknown.length) throw new Error(`unknown --methods ${unknown.join(', ')}`);
const needExperts = [...new Set(distillers.filter((d) => d.method.usesExperts).map((d) => d.method.name))];
if (needExperts.length && !expertsDir) {
  const flat = needExperts.filter((m) => m === 'ftd' || m === 'datm');
  throw new Error(
    `${needExperts.join(', ')} need --experts <dir> (made by \`distillery experts\`${flat.length ? `; ${flat.join(', ')}: --optimizer gsam` : ''})`,
  );
}
const needsFeature = coresets.some((m) => m !== 'random');
function isTrajectoryMatching(m: AnyMethod): boolean {
  return m.subFamily === 'multi step: trajectory matching';
}
function isPerformanceMatching(m: AnyMethod): boolean {
  return m.family === 'performance matching';
}

const t0 = performance.now();
const dataset = loadDataset(datasetName);
const evalPrecision = precisionOption('float32').parse(arg('--eval-precision', 'float32'));
const selectionPrecision = precisionOption('float32').parse(arg('--selection-precision', 'float32'));
const augmentArg = arg('--eval-augment', 'true');
const evalAugment = augmentArg === 'true' ? true : augmentArg === 'false' ? false : augmentArg;
const protocol = defaultProtocol(dataset.name, {
  precision: evalPrecision,
  augment: evalAugment,
  epochs,
  evalModel: 'ConvNet',
});
const evalOpts = { models: ['ConvNet'], runs, protocol, seed: 0 };
const fmt = (s: Score) => `${(100 * s.mean).toFixed(2)} +- ${(100 * s.std).toFixed(2)}`;
const log = (line: string) => console.error(`[${((performance.now() - t0) / 60000).toFixed(1)} min] ${line}`);

let feature: FeatureNet | undefined;
let selectionAccuracy: number | null = null;
if (needsFeature) {
  log(
    `selection network for herding/k-center/forgetting: ConvNet, DeepCore's settings, ${selectionEpochs} epochs (${selectionPrecision}; cached)`,
  );
  feature = selectionNetwork(dataset, 1, { epochs: selectionEpochs, precision: selectionPrecision });
  selectionAccuracy = accuracy(feature.net, feature.state, dataset.test);
  log(`selection network test accuracy: ${(100 * selectionAccuracy).toFixed(2)}`);
}

/**
 * The method's resolved run config, layered as `distillery distill` layers it: its defaults, the
 * `quick` preset (MTT/TESLA/IDC), this benchmark's settings, --set.
 */
function runConfig(d: Distiller, ipc: number, seed: number, iterations: number) {
  const { method } = d;
  const ours: Record<string, unknown> = { model: 'ConvNet', seed, iterations };
  if (method === dm) ours.methodConfig = { batchReal, realDtype };
  else if (method === dc || method === dsa) ours.methodConfig = { batchReal, innerLoop, realDtype };
  else if (method.usesExperts) ours.methodConfig = { experts: expertsDir };
  if (d.parameterization) ours.parameterization = { kind: d.parameterization };
  const preset = method === dm || method === dc || method === dsa ? null : 'quick';
  return layeredConfig({
    method: method.name,
    dataset: dataset.name,
    ipc,
    preset,
    overrides: deepMerge(ours, overrides),
  }).config;
}

/**
 * Distills `sets` sets (seeds 3, 4, ...) with the library loop and evaluates each with `runs` networks:
 * the column's score, and for learned regression targets one more per extra --target-loss.
 */
async function distillAndEvaluate(d: Distiller, ipc: number, its: number): Promise<Record<string, Score>> {
  const accs: Record<string, number[]> = {};
  for (let k = 0; k < sets; k++) {
    const session = newSession(dataset, runConfig(d, ipc, 3 + k, its));
    await runIterations(session, 0, its);
    closeSession(session);
    const { synthetic } = session;
    if (k === 0)
      log(
        `  ${d.column}: storage ${JSON.stringify(synthetic.storage(dataset.imageShape))}, ${synthetic.decodedPerClass} decoded per class`,
      );
    const losses = synthetic.labelForm === 'targets' ? targetLosses : [targetLosses[0]];
    losses.forEach((loss, i) => {
      const key = i === 0 ? d.column : `${d.column} (${loss})`;
      // A set that keeps a moving average of its images (FTD) is evaluated on the average.
      // The clone is taken inside withEma: detached pixels share storage with the set's leaf, which gets the
      // raw images back when withEma returns.
      const train = synthetic.withEma(() => {
        const t = synthetic.trainingSet(loss);
        const images = t.images.clone();
        t.images.dispose();
        return { ...t, images };
      });
      let score: Score;
      try {
        score = evaluateSet(dataset, train, evalOpts).ConvNet;
      } catch (e) {
        // A loss under which the protocol's training diverges is a finding, not a crash.
        if (!(e instanceof DivergedError)) throw e;
        log(`  ${key} set ${k} (targets: ${loss}): ${e.message}`);
        return;
      } finally {
        train.labels.dispose();
      }
      const what = synthetic.labelForm === 'targets' ? ` (targets: ${loss})` : '';
      if (sets > 1 || losses.length > 1)
        log(
          `  ${key} set ${k}${what}: ${fmt(score)}${train.lr ? ` (learned lr ${train.lr.toPrecision(3)})` : ''}`,
        );
      (accs[key] ??= []).push(...score.runs);
    });
    if (synthetic.hasEma) {
      const raw = evaluateSet(dataset, synthetic.trainingSet(losses[0]), evalOpts).ConvNet;
      log(`  ${d.column} set ${k}: the raw images (not the moving average): ${fmt(raw)}`);
      (accs[`${d.column} (raw images)`] ??= []).push(...raw.runs);
    }
    const own = d.method.ownEvaluation?.(synthetic, dataset, session.config.methodConfig, session.ctx.state);
    if (own) log(`  ${d.column} set ${k}: ${own.name}: test accuracy ${(100 * own.accuracy).toFixed(2)}`);
  }
  return Object.fromEntries(Object.entries(accs).map(([key, a]) => [key, summarize(a)]));
}

const rows: string[] = [];
for (const ipc of ipcs) {
  const scores: Record<string, Score> = {};
  for (const method of coresets) {
    scores[method] =
      method === 'random'
        ? evaluateSubsets(dataset, (r) => dataset.sampleIndices(ipc, new E.Generator(1000 + r)), evalOpts)
            .ConvNet
        : evaluateSet(
            dataset,
            dataset.gather(selectCoreset(method, dataset, ipc, new E.Generator(2), feature)),
            evalOpts,
          ).ConvNet;
    log(`ipc ${ipc} ${method}: ${fmt(scores[method])}`);
  }
  if (withInit) {
    // The real-initialised methods' start for seed 3 + r (draw 0 is the start of the first set).
    const pick = (r: number) => selectCoreset('random', dataset, ipc, new E.Generator(3 + r));
    scores.init = evaluateSubsets(dataset, pick, evalOpts).ConvNet;
    log(
      `ipc ${ipc} init (the real images the methods start from, one draw per network): ${fmt(scores.init)}`,
    );
  }
  for (const d of distillers) {
    const perIpc = isTrajectoryMatching(d.method)
      ? tmIterations
      : d.method === idc || d.method === idcI
        ? idcIterations
        : d.method === cafe
          ? cafeIterations
          : isPerformanceMatching(d.method)
            ? pmIterations
            : gmIterations;
    // Distribution matching but CAFE (whose iterations hold adaptive loops) shares DM's iterations, so the
    // columns share a budget.
    const its =
      d.method.family === 'distribution matching' && d.method !== cafe
        ? iterations
        : perIpc[ipcs.indexOf(ipc)];
    try {
      const got = await distillAndEvaluate(d, ipc, its);
      Object.assign(scores, got);
      let at = columnNames.indexOf(d.column);
      for (const key of Object.keys(got)) {
        if (!columnNames.includes(key)) columnNames.splice(at + 1, 0, key);
        at = columnNames.indexOf(key);
      }
    } catch (e) {
      // A parameterization that does not fit this IPC's storage budget is a cell, not a crash.
      if (!(e instanceof ParameterizationError)) throw e;
      log(`ipc ${ipc} ${d.column}: ${e.message}`);
      continue;
    }
    log(`ipc ${ipc} ${d.column} (${its} iterations): ${fmt(scores[d.column])}`);
  }
  rows.push(
    `| ${ipc} | ${columnNames.map((m) => (scores[m] ? fmt(scores[m]) : 'over budget')).join(' | ')} |`,
  );
}
if (feature) disposeFeatureNet(feature);

console.log(
  `${dataset.name}: ConvNet-3 test accuracy (%), ${runs} networks x ${epochs} epochs each (augmentation ${protocol.augment}, ${evalPrecision}); random/init: one draw per network; methods: ${sets} set(s) x ${runs} networks; real batch ${batchReal}/class (real-side precision: ${realDtype ?? "each method's default"}); DM ${iterations} iterations; DC/DSA ${gmIterations.join('/')} outer iterations at IPC ${ipcs.join('/')}, inner loop ${innerLoop ?? 'by IPC (reference)'}; IDC ${idcIterations.join('/')} outer iterations; KIP/RFAD/FRePo/DD ${pmIterations.join('/')} iterations (learned targets trained with ${targetLosses.join(', ')}); MTT/TESLA ${tmIterations.join('/')} iterations (quick presets${Object.keys(overrides).length ? ` + ${JSON.stringify(overrides)}` : ''}, experts ${expertsDir || 'none'}); ${selectionAccuracy !== null ? `coresets selected with DeepCore's selection network (${selectionEpochs} epochs, ${selectionPrecision}; its test accuracy ${(100 * selectionAccuracy).toFixed(2)}); ` : ''}${((performance.now() - t0) / 60000).toFixed(0)} min`,
);
console.log(`| ipc | ${columnNames.join(' | ')} |`);
console.log(`|---:|${columnNames.map(() => '---|').join('')}`);
for (const r of rows) console.log(r);
