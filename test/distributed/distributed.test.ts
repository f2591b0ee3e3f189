// libtorch's distributed engine from Distillery, over loopback with 2 processes: the collectives'
// results, a dead peer and a silent peer surfacing as clear errors within the timeout, `distillery
// launch` (environment, output, exit status), and a data-parallel DM / M3D run equal to the single
// process's, resuming only with its world size.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as E from '../../src/engine/index.js';
import { freePort, launch } from '../../src/cli/commands/launch.js';
import { Distiller } from '../../src/distill/distiller.js';
import { resolveConfig } from '../../src/distill/config.js';
import { RunDir } from '../../src/distill/rundir.js';
import { tempDir, writeSquaresFile } from '../fixtures.js';

// A failing test must not wait torch's 30 minutes: every launched rank inherits this timeout.
process.env.DISTILLERY_DIST_TIMEOUT_MS = '60000';

const WORKER = fileURLToPath(new URL('./worker.js', import.meta.url));
const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

/** Runs the worker scenario as `size` ranks; resolves with each rank's JSON line (null if none) and status. */
async function ranks(
  scenario: string,
  size = 2,
  timeoutMs = 20000,
): Promise<{ out: (Record<string, unknown> | null)[]; status: (number | null)[] }> {
  const port = await freePort();
  const procs = Array.from({ length: size }, (_, rank) =>
    spawn(process.execPath, [WORKER], {
      env: {
        ...process.env,
        DISTILLERY_DIST_WORKER: scenario,
        DISTILLERY_DIST_TIMEOUT_MS: String(timeoutMs),
        RANK: String(rank),
        WORLD_SIZE: String(size),
        MASTER_ADDR: '127.0.0.1',
        MASTER_PORT: String(port),
        OMP_NUM_THREADS: '1',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  const results = await Promise.all(
    procs.map(
      (p) =>
        new Promise<{ line: Record<string, unknown> | null; status: number | null }>((resolve) => {
          let text = '';
          p.stdout.on('data', (d: Buffer) => (text += d.toString()));
          p.on('exit', (status) => {
            const last = text.trim().split('\n').pop();
            resolve({ line: last ? (JSON.parse(last) as Record<string, unknown>) : null, status });
          });
        }),
    ),
  );
  return { out: results.map((r) => r.line), status: results.map((r) => r.status) };
}

test('collectives over loopback: all-reduce (sum, max), broadcast, all-gather, store, barrier', async () => {
  const { out, status } = await ranks('collectives');
  assert.deepEqual(status, [0, 0]);
  for (const r of out) {
    assert.deepEqual(r!.sum, [3, 30]);
    assert.deepEqual(r!.max, [3]);
    assert.deepEqual(r!.broadcast, [42, 7]);
    assert.deepEqual(r!.gathered, [
      [0, 0],
      [1, 1],
    ]);
    assert.equal(r!.value, 'hello from 0');
  }
});

test('a rank that dies makes the others fail with a clear error, not a hang', async () => {
  const { out, status } = await ranks('peer-dies', 2, 20000);
  assert.equal(status[1], 7);
  const r0 = out[0]!;
  assert.equal(r0.name, 'DistributedError');
  assert.match(
    String(r0.error),
    /^barrier: barrier failed on rank 0 of 2: .*(Connection closed|reset|peer)/i,
  );
  assert.ok((r0.seconds as number) < 20, `failed after ${r0.seconds} s, within the timeout`);
});

test('a rank that never joins a collective makes the others time out after the timeout', async () => {
  const { out } = await ranks('peer-silent', 2, 2000);
  const r0 = out[0]!;
  assert.match(String(r0.error), /allReduce failed on rank 0 of 2: .*[Tt]imed? ?out/);
  assert.ok((r0.seconds as number) >= 1.5 && (r0.seconds as number) < 15, `after ${r0.seconds} s`);
});

test('ranks that disagree on the collective both fail after the timeout', async () => {
  const { out } = await ranks('mismatch', 2, 2000);
  assert.match(String(out[0]!.error), /allReduce failed on rank 0 of 2: .*timed out/i);
  assert.match(String(out[1]!.error), /barrier failed on rank 1 of 2: .*timed out/i);
});

test('ProcessGroup: bad settings and a missing environment are clear errors', () => {
  assert.throws(
    () => E.ProcessGroup.create({ rank: 2, worldSize: 2, port: 1234 }),
    /rank must be an integer in \[0, 1\]/,
  );
  assert.throws(() => E.ProcessGroup.fromEnv({}), /RANK and WORLD_SIZE are not set/);
  assert.throws(() => E.worldFromEnv({ RANK: '0' }), /WORLD_SIZE is not set/);
  assert.throws(
    () => E.worldFromEnv({ RANK: '3', WORLD_SIZE: '2', MASTER_PORT: '1' }),
    /RANK=3 must be below WORLD_SIZE=2/,
  );
  assert.equal(E.worldFromEnv({}), null);
});

test('distillery launch: torchrun variables per rank, prefixed output, the first failure is the exit status', async () => {
  const lines: string[] = [];
  const ok = await launch(
    [
      process.execPath,
      '-e',
      'console.log([process.env.RANK, process.env.WORLD_SIZE, process.env.LOCAL_RANK, process.env.MASTER_ADDR, process.env.OMP_NUM_THREADS].join(" "))',
    ],
    { nproc: 2, threads: 1, out: (l) => lines.push(l), err: (l) => lines.push(l) },
  );
  assert.equal(ok, 0);
  assert.deepEqual(lines.sort(), ['[rank 0] 0 2 0 127.0.0.1 1', '[rank 1] 1 2 1 127.0.0.1 1']);
  const errors: string[] = [];
  const failed = await launch(
    [process.execPath, '-e', 'if (process.env.RANK === "1") process.exit(3); setTimeout(() => {}, 60000)'],
    { nproc: 2, out: () => {}, err: (l) => errors.push(l) },
  );
  assert.equal(failed, 3, 'rank 1 failed with 3; rank 0 was stopped instead of waiting a minute');
  assert.ok(errors.some((l) => /\[rank 1\] exited with status 3; stopping the other ranks/.test(l)));
  // Through the CLI: the status of `distillery launch` itself.
  const cli = spawnSync(
    process.execPath,
    [CLI, 'launch', '--nproc', '2', '--', process.execPath, '-e', 'process.exit(+process.env.RANK * 5)'],
    {
      encoding: 'utf8',
    },
  );
  assert.equal(cli.status, 5, cli.stderr);
  // A command that does not join the group is refused rather than run N times.
  await assert.rejects(() => launch(['study', 'quick'], { nproc: 2 }), /'study' does not run data-parallel/);
});

const data = writeSquaresFile({ classes: 3, perClass: 12 });
const distillArgs = (method: string, out: string, evalRuns = 0) => [
  'distill',
  '--dataset',
  data,
  '--method',
  method,
  '--ipc',
  '2',
  '--model',
  'ConvNetW8',
  '--iterations',
  '3',
  '--eval-runs',
  String(evalRuns),
  '--eval-epochs',
  '1',
  '--out',
  out,
  '--set',
  'methodConfig.batchReal=6',
  // CAFE: 2 image updates per iteration with one epoch of training on the set between them.
  ...(method === 'cafe'
    ? ['methodConfig.maxImageSteps=2', 'methodConfig.maxNetEpochs=1', 'methodConfig.probePerClass=2']
    : ['methodConfig.realDtype=float32']
  ).flatMap((a) => ['--set', a]),
  '--set',
  'checkpointEvery=1',
  '--set',
  'baselines=false',
  // DC: 2 outer steps with one inner epoch of network training on the set between them.
  ...(method === 'dc' ? ['--set', 'methodConfig.outerLoop=2', '--set', 'methodConfig.innerLoop=1'] : []),
];

/**
 * The run `two` (several ranks) equals `one` (one process): images within 1e-5 (relative to their
 * scale), and the same positive loss at each of its `iterations` (the matching did something).
 */
function assertSameRun(one: string, two: string, iterations: number): void {
  const images = (run: string) =>
    E.loadSafetensors(join(run, 'artifact', 'synthetic.safetensors')).tensors.images;
  const [a, b] = [images(one), images(two)];
  const diff = a.sub(b).abs().max().item();
  assert.ok(diff <= 1e-5 * Math.max(1, a.abs().max().item()), `images differ by ${diff}`);
  const losses = (run: string) =>
    readFileSync(join(run, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { loss?: number }).loss)
      .filter((x): x is number => typeof x === 'number');
  const [l1, l2] = [losses(one), losses(two)];
  assert.equal(l2.length, iterations);
  l1.forEach((x, i) =>
    assert.ok(x > 0 && Math.abs(x - l2[i]) <= 1e-5 * x, `iteration ${i + 1}: ${x} vs ${l2[i]}`),
  );
}

/** The final evaluation rank 0 (or the single process) logged. */
function finalScores(run: string): unknown {
  const lines = readFileSync(join(run, 'metrics.jsonl'), 'utf8').trim().split('\n');
  return (JSON.parse(lines[lines.length - 1]) as { eval?: unknown }).eval;
}

for (const method of ['dm', 'm3d', 'dc', 'cafe'])
  test(`${method} on 2 ranks (each matches its classes' real images) equals the single process`, async () => {
    const one = join(tempDir(`${method}-1`), 'run');
    const two = join(tempDir(`${method}-2`), 'run');
    // DM is also evaluated: its 3 networks are shared among the ranks (2 on rank 0, 1 on rank 1).
    const runs = method === 'dm' ? 3 : 0;
    // One thread in every process: the kernels' reduction order then matches too.
    const single = spawnSync(process.execPath, [CLI, ...distillArgs(method, one, runs)], {
      encoding: 'utf8',
      env: { ...process.env, OMP_NUM_THREADS: '1' },
    });
    assert.equal(single.status, 0, single.stderr);
    const err: string[] = [];
    const status = await launch(distillArgs(method, two, runs), {
      nproc: 2,
      threads: 1,
      out: () => {},
      err: (l) => err.push(l),
    });
    assert.equal(status, 0, err.join('\n'));
    assertSameRun(one, two, 3);
    if (runs) assert.deepEqual(finalScores(two), finalScores(one), 'the same networks, the same accuracies');
    // Rank 0 alone wrote the run: one run.json recording the world size.
    assert.equal((new RunDir(two).readRecord() as { worldSize?: number }).worldSize, 2);
    if (method === 'dm') {
      // Resuming it as one process is refused with what to do.
      const resumed = spawnSync(process.execPath, [CLI, 'distill', '--resume', two, '--iterations', '4'], {
        encoding: 'utf8',
      });
      assert.notEqual(resumed.status, 0);
      assert.match(
        resumed.stderr,
        /was started with 2 process\(es\); resume it with the same number \(distillery launch --nproc 2\), not 1/,
      );
    }
  });

test("experts on 2 ranks (expert i on rank i mod 2) equal one process's, file for file", async () => {
  const one = join(tempDir('experts-1'), 'x');
  const two = join(tempDir('experts-2'), 'x');
  const args = (out: string) => [
    'experts',
    '--dataset',
    data,
    '--model',
    'ConvNetW8',
    '--experts',
    '3',
    '--epochs',
    '1',
    '--out',
    out,
  ];
  // One thread in every process: the kernels' reduction order then matches bit for bit.
  const single = spawnSync(process.execPath, [CLI, ...args(one)], {
    encoding: 'utf8',
    env: { ...process.env, OMP_NUM_THREADS: '1' },
  });
  assert.equal(single.status, 0, single.stderr);
  const err: string[] = [];
  assert.equal(
    await launch(args(two), { nproc: 2, threads: 1, out: () => {}, err: (l) => err.push(l) }),
    0,
    err.join('\n'),
  );
  assert.equal(
    readFileSync(join(two, 'manifest.json'), 'utf8'),
    readFileSync(join(one, 'manifest.json'), 'utf8'),
  );
  for (const expert of ['expert-000', 'expert-001', 'expert-002'])
    for (const epoch of ['epoch-000', 'epoch-001']) {
      const f = (d: string) =>
        E.loadSafetensors(join(d, expert, `${epoch}.safetensors`)).tensors.params.toNumbers();
      assert.deepEqual(f(two), f(one), `${expert}/${epoch}`);
    }
});

test('mtt (adjoint) on 2 ranks (each student minibatch split) equals the single process; unrolled is refused', async () => {
  const experts = join(tempDir('dp-experts'), 'x');
  const trained = spawnSync(
    process.execPath,
    [
      CLI,
      'experts',
      '--dataset',
      data,
      '--model',
      'ConvNetW8',
      '--experts',
      '1',
      '--epochs',
      '3',
      '--out',
      experts,
    ],
    { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: '1' } },
  );
  assert.equal(trained.status, 0, trained.stderr);
  const args = (out: string, gradient = 'adjoint') =>
    [
      'distill',
      '--dataset',
      data,
      '--method',
      'mtt',
      '--ipc',
      '3',
      '--model',
      'ConvNetW8',
      '--iterations',
      '3',
      '--eval-runs',
      '0',
      '--out',
      out,
      '--experts',
      experts,
      '--lr',
      '100',
      ...['methodConfig.gradient=' + gradient, 'methodConfig.synSteps=3', 'methodConfig.expertEpochs=1'],
      ...['methodConfig.maxStartEpoch=2', 'methodConfig.batchSyn=5', 'baselines=false'],
    ].flatMap((a) => (a.includes('=') && !a.startsWith('--') ? ['--set', a] : [a]));
  const one = join(tempDir('mtt-1'), 'run');
  const two = join(tempDir('mtt-2'), 'run');
  const single = spawnSync(process.execPath, [CLI, ...args(one)], {
    encoding: 'utf8',
    env: { ...process.env, OMP_NUM_THREADS: '1' },
  });
  assert.equal(single.status, 0, single.stderr);
  const err: string[] = [];
  const status = await launch(args(two), { nproc: 2, threads: 1, out: () => {}, err: (l) => err.push(l) });
  assert.equal(status, 0, err.join('\n'));
  assertSameRun(one, two, 3);
  const lr = (run: string) =>
    E.loadSafetensors(join(run, 'artifact', 'synthetic.safetensors')).tensors.lr.item();
  assert.ok(Math.abs(lr(one) - lr(two)) <= 1e-6 * Math.abs(lr(one)), 'the same learned lr');
  const refused: string[] = [];
  const unrolled = await launch(args(join(tempDir('mtt-u'), 'run'), 'unrolled'), {
    nproc: 2,
    threads: 1,
    out: () => {},
    err: (l) => refused.push(l),
  });
  assert.notEqual(unrolled, 0);
  assert.match(refused.join('\n'), /mtt runs data-parallel with methodConfig.gradient=adjoint/);
  // A minibatch smaller than the world is refused on every rank (no rank waits for another).
  const tiny: string[] = [];
  const small = await launch([...args(join(tempDir('mtt-s'), 'run')), '--set', 'methodConfig.batchSyn=1'], {
    nproc: 2,
    threads: 1,
    out: () => {},
    err: (l) => tiny.push(l),
  });
  assert.notEqual(small, 0);
  assert.match(tiny.join('\n'), /a student minibatch of 1 images cannot be split over 2 ranks/);
});

test('a method that does not run data-parallel is refused for several processes', async () => {
  const world = {
    rank: 0,
    worldSize: 2,
    allReduce: () => assert.fail('no collective'),
    barrier: () => assert.fail('no barrier'),
  };
  const config = resolveConfig({
    dataset: data,
    method: 'kip',
    ipc: 1,
    model: 'ConvNetW8',
    iterations: 1,
    evalRuns: 0,
  });
  await assert.rejects(
    () => new Distiller(config, new RunDir(join(tempDir('dc-dp'), 'run'))).run({ resume: false, world }),
    /kip does not run data-parallel \(methods that do: (?=[^)]*\bmtt\b)(?=[^)]*\bdm\b)[^)]*\); run it as one process/,
  );
});
