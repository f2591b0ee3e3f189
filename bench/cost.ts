// The survey's cost comparison, measured: seconds per outer iteration (median) and the allocator's peak
// bytes in use during an iteration, for every implemented method at IPC 1, 10 and 50 on MNIST, all in one
// process with the same real images per iteration (`--real`, split per class where a method samples per
// class). Each method runs its `quick` preset otherwise (DC/DSA: their preset's inner loops, so one
// "iteration" is a whole outer loop; MTT: the MNIST calibration; MTT's family, HaBa and NCFM need
// --experts). The reference row (`--reference`, default the first method: DM in the default list, as the
// issue's target compares RFAD and FRePo against it) gives every other row's time ratio; trajectory
// matching's extensions compare against MTT.
//
//   npm run build && node dist/bench/cost.js [--iterations 3] [--ipc 1,10,50] [--real 640]
//       [--methods dm,dc,kip,rfad,frepo,dd,mtt,cafe,idm,ncfm] [--experts /path/to/mnist-experts]
//       [--reference dm]
//   node dist/bench/cost.js --methods mtt,ftd,datm --ipc 1,10 --experts <gsam experts>
//       (ftd / datm need experts trained with `distillery experts --optimizer gsam`)
import { availableParallelism, cpus } from 'node:os';
import * as E from '../src/engine/index.js';
import { loadDataset } from '../src/data/registry.js';
import { layeredConfig } from '../src/distill/config.js';
import '../src/distill/methods/index.js';
import { getMethod } from '../src/distill/registry.js';
import { closeSession, newSession, runIterations } from '../src/distill/session.js';
import { median, numberFlag } from './util.js';

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : fallback;
};
const iterations = numberFlag('--iterations', 3);
const real = numberFlag('--real', 640);
const ipcs = arg('--ipc', '1,10,50').split(',').map(Number);
const methods = arg('--methods', 'dm,dc,kip,rfad,frepo,dd').split(',');
const experts = arg('--experts', '');
const reference = arg('--reference', methods[0]);
if (!methods.includes(reference))
  throw new Error(
    `--reference ${reference} is not among --methods ${methods.join(',')}: add it, or name one of them`,
  );
const dataset = loadDataset('mnist');
const perClass = Math.round(real / dataset.numClasses);

/** The method's real-batch setting for `real` images per iteration (per class where it samples per class). */
function realBatch(method: string): Record<string, unknown> {
  if (['dm', 'dc', 'dsa', 'kip', 'cafe', 'idm', 'm3d', 'ncfm'].includes(method))
    return { batchReal: perClass };
  if (method === 'rfad' || method === 'frepo' || method === 'dd') return { batchReal: real };
  return {};
}

/** Reference settings where the quick preset shrinks the model (the cost comparison is of the methods). */
function referenceShape(method: string): Record<string, unknown> {
  if (method === 'rfad') return { models: 8, width: 256 };
  if (method === 'frepo') return { width: 128, poolSize: 10 };
  if (getMethod(method).usesExperts) return { experts };
  return {};
}

interface Cell {
  seconds: number;
  peakMiB: number;
}

async function measure(method: string, ipc: number): Promise<Cell> {
  const { config } = layeredConfig({
    method,
    dataset: 'mnist',
    ipc,
    preset: 'quick',
    overrides: {
      seed: 0,
      iterations: iterations + 1,
      evalRuns: 0,
      methodConfig: { ...realBatch(method), ...referenceShape(method) },
    },
  });
  const session = newSession(dataset, config);
  const seconds: number[] = [];
  let peak = 0;
  E.resetPeakMemory();
  await runIterations(session, 0, iterations + 1, {
    after: ({ iteration, seconds: s }) => {
      // The first iteration warms caches and one-time setup; it is not counted.
      if (iteration > 1) {
        seconds.push(s);
        peak = Math.max(peak, E.allocatorStats().peakInUseBytes);
      }
      E.resetPeakMemory();
      return false;
    },
  });
  closeSession(session);
  return { seconds: median(seconds), peakMiB: peak / 2 ** 20 };
}

async function main(): Promise<void> {
  const rows: string[] = [];
  const cells: Record<string, Record<number, Cell | string>> = {};
  for (const method of methods) {
    cells[method] = {};
    for (const ipc of ipcs) {
      try {
        cells[method][ipc] = await measure(method, ipc);
      } catch (e) {
        cells[method][ipc] = (e as Error).message.split('\n')[0].slice(0, 80);
      }
      const c = cells[method][ipc];
      console.error(
        `${method} ipc ${ipc}: ${typeof c === 'string' ? c : `${c.seconds.toFixed(3)} s, ${c.peakMiB.toFixed(0)} MiB`}`,
      );
    }
  }
  const refCells = cells[reference];
  for (const method of methods) {
    const parts = ipcs.map((ipc) => {
      const c = cells[method][ipc];
      if (typeof c === 'string') return `- (${c})`;
      const ref = refCells?.[ipc];
      const ratio =
        ref && typeof ref !== 'string' && method !== reference
          ? ` (${(c.seconds / ref.seconds).toFixed(2)}x ${reference})`
          : '';
      return `${c.seconds.toFixed(3)} s${ratio}, ${c.peakMiB.toFixed(0)} MiB`;
    });
    rows.push(`| ${method} | ${parts.join(' | ')} |`);
  }
  console.log(
    `MNIST, ${real} real images per iteration, median of ${iterations} iterations after one warm-up; ${availableParallelism()} threads, ${cpus()[0]?.model ?? 'cpu'}`,
  );
  console.log(`| method | ${ipcs.map((i) => `IPC ${i}: s/iteration, peak`).join(' | ')} |`);
  console.log(`|---|${ipcs.map(() => '---|').join('')}`);
  for (const r of rows) console.log(r);
}

await main();
