// Engine benchmark: ConvNet-3 (width 128, instance norm, ReLU, avg pool; 28x28x1
// input, first conv padding 3), batch 256: forward (no grad), forward+backward,
// and a gradient-matching style double backward (d/dx of a distance between
// parameter gradients). Median of N runs after 2 warm-ups, in milliseconds.
//
// Columns: Distillery under its three allocator modes (separate processes), and
// PyTorch on the same libtorch with glibc's default malloc and with tuned malloc
// settings (bench/convnet3.py), all in this one run.
//
// This VM's timings drift by 10-30% over minutes, so the configurations are
// measured in alternating rounds (one fresh process per configuration and round)
// and each median is taken over all rounds' samples.
//
//   npm run bench:engine [-- --runs 3 --rounds 2]
import { execFileSync, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { availableParallelism, cpus } from 'node:os';
import * as E from '../src/engine/index.js';
import { median, numberFlag } from './util.js';

type Timings = { forward: number; forwardBackward: number; doubleBackward: number };
const COLUMNS: (keyof Timings)[] = ['forward', 'forwardBackward', 'doubleBackward'];
const WIDTH = 128;

function measure(runs: number): Samples {
  const gen = new E.Generator(0);
  const param = (...shape: number[]) =>
    E.rand(shape, { generator: gen }).sub(0.5).mul(0.1).keep().requiresGrad_();
  const params: E.Tensor[] = [];
  let cin = 1;
  for (let d = 0; d < 3; d++) {
    params.push(
      param(WIDTH, cin, 3, 3),
      param(WIDTH),
      E.noGrad(() => param(WIDTH).add_(1)),
      param(WIDTH),
    );
    cin = WIDTH;
  }
  params.push(param(10, WIDTH * 4 * 4), param(10));
  const forward = (x: E.Tensor) => {
    let h = x;
    for (let d = 0; d < 3; d++) {
      const [w, b, gw, gb] = params.slice(4 * d, 4 * d + 4);
      h = E.nn.conv2d(h, w, b, { padding: d === 0 ? 3 : 1 });
      h = E.nn.groupNorm(h, WIDTH, { weight: gw, bias: gb });
      h = E.nn.avgPool2d(h.relu(), 2);
    }
    return E.nn.linear(h.flatten(1), params[12], params[13]);
  };
  const x = E.randn([256, 1, 28, 28], { generator: gen }).keep();
  const y = E.randint(0, 10, [256], { generator: gen }).keep();
  const targets = params.map((p) => E.randn(p.shape, { generator: gen }).keep());

  const cases: Record<keyof Timings, () => void> = {
    forward: () => E.noGrad(() => forward(x)),
    forwardBackward: () => E.grad(E.nn.crossEntropy(forward(x), y), params),
    doubleBackward: () => {
      const xs = x.clone().requiresGrad_();
      const gw = E.grad(E.nn.crossEntropy(forward(xs), y), params, { createGraph: true });
      const d = gw.map((g, i) => g.sub(targets[i]).square().sum()).reduce((a, b) => a.add(b));
      E.grad(d, [xs]);
    },
  };
  const out = {} as Samples;
  for (const name of COLUMNS) {
    out[name] = [];
    for (let i = 0; i < runs + 2; i++) {
      const t0 = performance.now();
      E.tidy(cases[name]);
      if (i >= 2) out[name].push(performance.now() - t0);
    }
  }
  return out;
}

type Samples = Record<keyof Timings, number[]>;

function runWorker(mode: string, runs: number): Samples {
  const self = fileURLToPath(import.meta.url);
  const out = execFileSync(process.execPath, [self, '--worker', String(runs)], {
    env: { ...process.env, DISTILLERY_ALLOCATOR: mode },
    encoding: 'utf8',
  });
  return JSON.parse(out) as Samples;
}

function runPyTorch(tuned: boolean, runs: number): Samples | null {
  const python = '/usr/bin/python3';
  if (spawnSync(python, ['-c', 'import torch'], { stdio: 'ignore' }).status !== 0) return null;
  const script = fileURLToPath(new URL('../../bench/convnet3.py', import.meta.url));
  const env = { ...process.env };
  if (tuned) Object.assign(env, { MALLOC_MMAP_MAX_: '0', MALLOC_TRIM_THRESHOLD_: '68719476736' });
  const out = execFileSync(python, [script, String(runs), String(availableParallelism())], {
    env,
    encoding: 'utf8',
  });
  return JSON.parse(out) as Samples;
}

function main(): void {
  const argv = process.argv.slice(2);
  if (argv[0] === '--worker') {
    process.stdout.write(JSON.stringify(measure(Number(argv[1]))));
    return;
  }
  const runs = numberFlag('--runs', 3);
  const rounds = numberFlag('--rounds', 2);
  console.log(
    `ConvNet-3 w128 IN/ReLU/avgpool, batch 256 of 1x28x28; median of ${runs} runs x ${rounds} rounds (ms); ` +
      `${cpus()[0]?.model ?? '?'} x${availableParallelism()}, libtorch ${E.torchVersion()}`,
  );
  const configs: [string, (runs: number) => Samples | null][] = [
    ['Distillery (caching allocator, default)', (n) => runWorker('caching', n)],
    ['Distillery (mallopt only)', (n) => runWorker('mallopt', n)],
    ['Distillery (glibc default malloc)', (n) => runWorker('system', n)],
    ['PyTorch (glibc default malloc)', (n) => runPyTorch(false, n)],
    ['PyTorch (MALLOC_MMAP_MAX_=0, MALLOC_TRIM_THRESHOLD_=64G)', (n) => runPyTorch(true, n)],
  ];
  const samples: (Samples | null)[] = configs.map(() => null);
  for (let round = 0; round < rounds; round++) {
    configs.forEach(([, run], i) => {
      const s = run(runs);
      if (!s) return;
      const acc = (samples[i] ??= { forward: [], forwardBackward: [], doubleBackward: [] });
      for (const c of COLUMNS) acc[c].push(...s[c]);
    });
  }
  const rows: [string, Timings | null][] = configs.map(([name], i) => {
    const s = samples[i];
    return [
      name,
      s
        ? {
            forward: median(s.forward),
            forwardBackward: median(s.forwardBackward),
            doubleBackward: median(s.doubleBackward),
          }
        : null,
    ];
  });
  console.log(`| run | ${COLUMNS.join(' | ')} |`);
  console.log(`|---|${COLUMNS.map(() => '---:').join('|')}|`);
  for (const [name, t] of rows) {
    console.log(
      `| ${name} | ${t ? COLUMNS.map((c) => t[c].toFixed(1)).join(' | ') : 'python3-torch not installed'} |`,
    );
  }
  const ours = rows[0][1] as Timings;
  for (const [label, ref] of [
    ['vs PyTorch default malloc (target <= 1.00)', rows[3][1]],
    ['vs PyTorch tuned malloc (target <= 1.05)', rows[4][1]],
  ] as const) {
    if (ref)
      console.log(`| ratio ${label} | ${COLUMNS.map((c) => (ours[c] / ref[c]).toFixed(2)).join(' | ')} |`);
  }
}

main();
