// Data parallelism on this machine: 2 ranks x 1 thread (`distillery launch --nproc 2 --threads 1`)
// against 1 process x 2 threads (OMP_NUM_THREADS=2), for DM iterations, expert training and the
// evaluation networks, in alternating rounds. Wall times from the CLI's own JSON result lines (rank
// 0's) and metrics; medians over rounds.
//   node dist/bench/distributed.js [--rounds 3] [--iterations 12] [--ipc 10]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as E from '../src/engine/index.js';
import { loadDataset } from '../src/data/registry.js';
import { median, numberFlag } from './util.js';

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const rounds = numberFlag('--rounds', 3);
const iterations = numberFlag('--iterations', 12);
const ipc = numberFlag('--ipc', 10);
const work = mkdtempSync(join(tmpdir(), 'distillery-bench-dist-'));

/** A 6,000-image MNIST training subset (and 1,000 test images): one expert epoch in seconds, not minutes. */
function subsetFile(): string {
  const ds = loadDataset('mnist');
  const path = join(work, 'mnist-6k.safetensors');
  const pick = (split: { images: E.Tensor; labels: E.Tensor }, n: number) => ({
    images: split.images.narrow(0, 0, n).contiguous(),
    labels: split.labels.narrow(0, 0, n).contiguous(),
  });
  const train = pick(ds.train, 6000);
  const test = pick(ds.test, 1000);
  // Stored de-normalised (pixels in [0, 1]) as a custom dataset expects.
  const mean = ds.preprocessing.toSpec().mean[0];
  const std = ds.preprocessing.toSpec().std[0];
  E.saveSafetensors(path, {
    'train.images': train.images.mul(std).add(mean),
    'train.labels': train.labels,
    'test.images': test.images.mul(std).add(mean),
    'test.labels': test.labels,
  });
  return path;
}

function run(args: string[], ranks: 1 | 2): string {
  const full =
    ranks === 1 ? [CLI, ...args] : [CLI, 'launch', '--nproc', '2', '--threads', '1', '--', ...args];
  const r = spawnSync(process.execPath, full, {
    encoding: 'utf8',
    env: { ...process.env, OMP_NUM_THREADS: ranks === 1 ? '2' : '1' },
    maxBuffer: 64 << 20,
  });
  if (r.status !== 0) throw new Error(`${full.join(' ')} failed (${r.status}): ${r.stderr.slice(-2000)}`);
  return r.stdout;
}

/** The JSON result line of rank 0 (prefixed '[rank 0] ' under launch). */
function result(stdout: string): Record<string, unknown> {
  const line = stdout
    .split('\n')
    .map((l) => l.replace(/^\[rank 0\] /, ''))
    .filter((l) => l.startsWith('{"type":"result"'))
    .pop();
  if (!line) throw new Error(`no result line in:\n${stdout.slice(-2000)}`);
  return JSON.parse(line) as Record<string, unknown>;
}

let runs = 0;
/** A fresh output directory under the bench's temp folder (numbered: nothing random). */
const outDir = (what: string) => join(work, `${what}-${runs++}`);

/** `distill` of DM at the bench's IPC for `its` iterations, evaluated with `evalRuns` networks. */
function distillArgs(out: string, its: number, evalRuns: number, evalEpochs = 300): string[] {
  return [
    'distill',
    '--method',
    'dm',
    '--ipc',
    String(ipc),
    '--iterations',
    String(its),
    '--eval-runs',
    String(evalRuns),
    '--eval-epochs',
    String(evalEpochs),
    '--set',
    'baselines=false',
    '--out',
    out,
    '--json',
  ];
}

function dmSeconds(ranks: 1 | 2): number {
  const out = outDir(`dm-${ranks}`);
  run(distillArgs(out, iterations, 0), ranks);
  const seconds = readFileSync(join(out, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { seconds?: number })
    .filter((m) => typeof m.seconds === 'number')
    .map((m) => m.seconds!)
    .slice(2); // the first iterations warm caches
  rmSync(out, { recursive: true, force: true });
  return median(seconds);
}

function expertSeconds(ranks: 1 | 2, data: string): number {
  const out = outDir(`experts-${ranks}`);
  const t0 = performance.now();
  run(['experts', '--dataset', data, '--experts', '2', '--epochs', '2', '--out', out, '--json'], ranks);
  rmSync(out, { recursive: true, force: true });
  return (performance.now() - t0) / 1000;
}

function evaluationSeconds(ranks: 1 | 2): number {
  const out = outDir(`eval-${ranks}`);
  const r = result(run(distillArgs(out, 1, 4, 100), ranks));
  rmSync(out, { recursive: true, force: true });
  return (r.seconds as { evaluation: number }).evaluation;
}

const data = subsetFile();
const cells: Record<string, { one: number[]; two: number[] }> = {
  dm: { one: [], two: [] },
  experts: { one: [], two: [] },
  evaluation: { one: [], two: [] },
};
for (let r = 0; r < rounds; r++) {
  // Alternate which layout goes first, so drift over the run affects both alike.
  const order: (1 | 2)[] = r % 2 ? [2, 1] : [1, 2];
  for (const ranks of order) {
    const key = ranks === 1 ? 'one' : 'two';
    cells.dm[key].push(dmSeconds(ranks));
    cells.experts[key].push(expertSeconds(ranks, data));
    cells.evaluation[key].push(evaluationSeconds(ranks));
    console.error(
      `round ${r + 1} ranks ${ranks}: ${JSON.stringify(Object.fromEntries(Object.entries(cells).map(([k, v]) => [k, v[key].at(-1)])))}`,
    );
  }
}
rmSync(work, { recursive: true, force: true });
const what: Record<string, string> = {
  dm: `DM iteration, MNIST IPC ${ipc}, quick preset (real batch 64/class), s / iteration (median of iterations 3..${iterations})`,
  experts: '2 ConvNet experts x 2 epochs on a 6,000-image MNIST subset, wall s',
  evaluation: `4 evaluation ConvNets x 100 epochs on a DM IPC ${ipc} set, wall s`,
};
console.log(
  `Data parallelism, ${cpus()[0]?.model ?? 'CPU'} (${availableParallelism()} cores), libtorch ${E.torchVersion()}, each command's default precision; medians over ${rounds} alternating rounds`,
);
console.log('| work | 1 process x 2 threads | 2 ranks x 1 thread (Gloo) | ratio 2x1 / 1x2 |');
console.log('|---|---:|---:|---:|');
for (const [k, v] of Object.entries(cells)) {
  const [a, b] = [median(v.one), median(v.two)];
  console.log(`| ${what[k]} | ${a.toFixed(3)} | ${b.toFixed(3)} | ${(b / a).toFixed(2)} |`);
}
