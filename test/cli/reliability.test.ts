// What a careless or hostile user meets at the command line (issue 16): changed settings on resume,
// empty model lists, prototype keys, bad numbers, broken artifacts, failed starts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as E from '../../src/engine/index.js';
import { duration, scoreText } from '../../src/cli/output.js';
import { layeredConfig } from '../../src/distill/config.js';
import { distill } from '../../src/distill/api.js';
import { tempDir, writeLeftRightFolder } from '../fixtures.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const cache = tempDir('rel-cache');

function cli(args: string[]) {
  const r = spawnSync(process.execPath, [MAIN, ...args], {
    encoding: 'utf8',
    env: { ...process.env, DISTILLERY_CACHE: cache },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const folderDataset = () => writeLeftRightFolder('rel-data');

const data = folderDataset();
const base = (out: string) => ['distill', '--dataset', data, '--ipc', '1', '--iterations', '2', '--out', out];

test('resume refuses every changed setting, naming it; --preset and --out cannot change a run', () => {
  const out = join(tempDir('rel-run'), 'run');
  const first = cli([...base(out), '--iterations', '2', '--eval-runs', '0']);
  assert.equal(first.status, 0, first.stderr);
  for (const [flag, value, key] of [
    ['--ipc', '2', 'ipc'],
    ['--seed', '5', 'seed'],
    ['--method', 'dc', 'method'],
  ]) {
    const r = cli(['distill', '--resume', out, flag, value]);
    assert.equal(r.status, 1, `${flag}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`${key}: .* \\(run\\) vs .* \\(now\\)`), flag);
  }
  const preset = cli(['distill', '--resume', out, '--preset', 'paper']);
  assert.equal(preset.status, 2);
  assert.match(preset.stderr, /--preset cannot be combined with --resume/);
  // The same values as the run's are no change.
  const same = cli(['distill', '--resume', out, '--ipc', '1', '--seed', '0', '--json']);
  assert.equal(same.status, 0, same.stderr);
  // A second fresh run into the same directory is refused.
  const again = cli([...base(out), '--eval-runs', '0']);
  assert.equal(again.status, 2);
  assert.match(again.stderr, /already holds a run: resume it with --resume/);
});

test('a failed start leaves no directory behind, so the corrected rerun works', () => {
  const root = tempDir('rel-fail');
  const out = join(root, 'new', 'deep', 'run');
  const r = cli(['distill', '--dataset', data, '--method', 'mtt', '--ipc', '1', '--out', out]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /experts: set methodConfig\.experts to a directory made by `distillery experts`/);
  assert.equal(existsSync(join(root, 'new')), false, 'no run directory after a config error');
  // A failure inside the run's setup (after the directory and its lock were made): all of it goes.
  const big = cli(['distill', '--dataset', data, '--ipc', '9', '--out', out]);
  assert.equal(big.status, 1);
  assert.match(big.stderr, /--ipc 9 is larger than the smallest class/);
  assert.equal(
    existsSync(join(root, 'new')),
    false,
    'no run directory (nor its new parents) after a failed start',
  );
  assert.equal(cli([...base(out), '--eval-runs', '0']).status, 0, 'the corrected rerun works');
});

test('--set refuses prototype keys and paths through a value; numbers are checked', () => {
  const out = join(tempDir('rel-set'), 'run');
  const proto = cli([...base(out), '--set', '__proto__.polluted=1']);
  assert.equal(proto.status, 2);
  assert.match(proto.stderr, /--set __proto__\.polluted=1: '__proto__' is not a config key/);
  const nested = cli([...base(out), '--set', 'constructor.prototype.x=1']);
  assert.equal(nested.status, 2);
  const json = cli([...base(out), '--set', 'methodConfig={"__proto__":{"polluted":1}}']);
  assert.equal(json.status, 2);
  assert.match(json.stderr, /'__proto__' is not a config key/);
  const through = cli([...base(out), '--set', 'iterations.x=1']);
  assert.equal(through.status, 2);
  assert.match(through.stderr, /--set iterations\.x=1: iterations is a value \(2\), not a group of settings/);
  const lr = cli([...base(out), '--lr', 'abc']);
  assert.equal(lr.status, 2);
  assert.match(lr.stderr, /expected a positive number, got 'abc'/);
  assert.equal(existsSync(out), false);
});

test('eval and show: empty model lists, run directories, broken meta.json and a NaN learned lr are clear errors', () => {
  const out = join(tempDir('rel-art'), 'run');
  const r = cli([...base(out), '--eval-runs', '0']);
  assert.equal(r.status, 0, r.stderr);
  const art = join(out, 'artifact');
  const none = cli(['eval', art, '--models', ',']);
  assert.equal(none.status, 2);
  assert.match(none.stderr, /--models: no model names in ','/);
  const runDir = cli(['eval', out]);
  assert.equal(runDir.status, 1);
  assert.match(runDir.stderr, /it is a run directory; its artifact is .*run\/artifact/);

  const broken = (edit: (meta: Record<string, unknown>) => void) => {
    const dir = join(tempDir('rel-broken'), 'artifact');
    cpSync(art, dir, { recursive: true });
    const meta = JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')) as Record<string, unknown>;
    edit(meta);
    writeFileSync(join(dir, 'meta.json'), JSON.stringify(meta));
    return dir;
  };
  const noDataset = cli(['eval', broken((m) => delete m.dataset)]);
  assert.equal(noDataset.status, 1);
  assert.match(noDataset.stderr, /meta\.json dataset: Required/);
  const badPre = cli(['eval', broken((m) => (m.preprocessing = { mean: 'x' }))]);
  assert.match(badPre.stderr, /meta\.json preprocessing\.mean: Expected array, received string/);
  // show validates the artifact even when grid.png is already there.
  const shown = broken((m) => delete m.dataset);
  assert.ok(existsSync(join(shown, 'grid.png')));
  const show = cli(['show', shown]);
  assert.equal(show.status, 1);
  assert.match(show.stderr, /not a valid Distillery artifact/);

  const nanLr = join(tempDir('rel-nan'), 'artifact');
  cpSync(art, nanLr, { recursive: true });
  const file = join(nanLr, 'synthetic.safetensors');
  const { tensors, metadata } = E.loadSafetensors(file);
  E.saveSafetensors(file, { ...tensors, lr: E.tensor([NaN]) }, metadata);
  const lr = cli(['eval', nanLr]);
  assert.equal(lr.status, 1);
  assert.match(lr.stderr, /learned learning rate is NaN; the run diverged/);
});

test('one network is reported as n=1, never +- 0.00', () => {
  assert.equal(scoreText({ mean: 0.548, std: 0, runs: [0.548] }, '%'), '54.80% (n=1)');
  assert.equal(scoreText({ mean: 0.5, std: 0.01, runs: [0.49, 0.51] }), '50.00 +- 1.00');
  assert.equal(duration(7170), '2 h 00 min');
  assert.equal(duration(3599), '59 min 59 s');
  assert.equal(duration(3660), '1 h 01 min');
});

test('quick stays quick for any IPC and custom datasets (derived from the nearest preset); paper says it is paper-scale', () => {
  const at = (dataset: string, ipc: number, preset: 'quick' | 'paper' = 'quick') =>
    layeredConfig({ method: 'dm', dataset, ipc, preset });
  const twenty = at('mnist', 20);
  assert.equal(twenty.config.iterations, at('mnist', 10).config.iterations);
  assert.match(twenty.note, /derived from .*presets\/dm\/mnist-ipc10\.json \(no file for mnist at ipc 20\)/);
  assert.match(at('mnist', 3).note, /mnist-ipc1\.json/, 'nearest on a log scale: 3 is nearer 1 than 10');
  const custom = at(data, 7);
  assert.equal(custom.config.iterations, at('mnist', 10).config.iterations);
  assert.equal(custom.config.evalRuns, 1);
  // Another dataset's experts are not carried over to a custom dataset.
  assert.throws(
    () => layeredConfig({ method: 'mtt', dataset: data, ipc: 1, preset: 'quick' }),
    /experts: set methodConfig\.experts to a directory made by `distillery experts`/,
  );
  assert.match(
    at('mnist', 20, 'paper').note,
    /using the method's defaults \(the published, paper-scale settings\)/,
  );
});

test('--dry-run prints the resolved config and a measured estimate, and writes nothing', () => {
  const out = join(tempDir('rel-dry'), 'run');
  const r = cli([...base(out), '--dry-run', '--json']);
  assert.equal(r.status, 0, r.stderr);
  const result = JSON.parse(r.stdout.trim().split('\n').pop() as string);
  assert.equal(result.dryRun, true);
  assert.equal(result.config.iterations, 2);
  assert.ok(result.estimate.secondsPerIteration > 0 && result.estimate.distillSeconds > 0);
  assert.ok(Number.isFinite(result.estimate.evaluationSeconds));
  assert.equal(existsSync(out), false);
});

test('without a terminal, progress lines carry the loss, rate, elapsed time and ETA; --json starts with the run directory; eval results are saved', () => {
  const out = join(tempDir('rel-log'), 'run');
  const r = cli([...base(out), '--eval-runs', '1', '--eval-epochs', '1']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /distilling: 2\/2 loss [\d.e+-]+, [\d.]+ it\/s \| \d+ s elapsed, ETA 0 s/);
  assert.match(r.stderr, /evaluating \(epochs\): 2\/2 the set: ConvNet #1 epoch 1 \| \d+ s elapsed/);
  assert.match(r.stdout, /Elapsed: distillation \d+ s, evaluation \d+ s/);
  const json = cli([...base(join(tempDir('rel-json'), 'run')), '--eval-runs', '0', '--json']);
  const first = JSON.parse(json.stdout.split('\n')[0]);
  assert.equal(first.type, 'start');
  assert.match(first.runDir, /rel-json-.*\/run$/);
  const e = cli([
    'eval',
    join(out, 'artifact'),
    '--runs',
    '1',
    '--epochs',
    '1',
    '--no-full-data',
    '--models',
    'ConvNetW32',
  ]);
  assert.equal(e.status, 0, e.stderr);
  assert.match(e.stdout, /1 on random real subsets of the same size/);
  assert.doesNotMatch(e.stdout, /full training set/);
  const saved = /Saved in (.*\.json)/.exec(e.stdout)?.[1] as string;
  const result = JSON.parse(readFileSync(saved, 'utf8'));
  assert.deepEqual(result.models, ['ConvNetW32']);
  assert.ok(result.distilled.ConvNetW32.mean >= 0 && result.randomSubset.ConvNetW32.runs.length === 1);
  assert.equal(result.fullData, null);
  const report = cli(['report', out]);
  assert.equal(report.status, 0, report.stderr);
  assert.match(readFileSync(join(out, 'report.html'), 'utf8'), /Other evaluations[^]*<td>ConvNetW32<\/td>/);
});

test('--config FILE (YAML or JSON) is layered under the flags and validated; methods <name> lists settings; --version', () => {
  const dir = tempDir('rel-config');
  const yamlFile = join(dir, 'run.yaml');
  writeFileSync(yamlFile, 'method: dm\nipc: 1\niterations: 2\nevalRuns: 0\nmethodConfig:\n  batchReal: 3\n');
  const out = join(dir, 'run');
  const r = cli([
    'distill',
    '--dataset',
    data,
    '--config',
    yamlFile,
    '--iterations',
    '1',
    '--out',
    out,
    '--dry-run',
    '--json',
  ]);
  assert.equal(r.status, 0, r.stderr);
  const config = JSON.parse(r.stdout.trim().split('\n').pop() as string).config;
  assert.equal(config.ipc, 1);
  assert.equal(config.iterations, 1, 'a typed flag wins over the file');
  assert.equal(config.methodConfig.batchReal, 3);
  const badKey = join(dir, 'bad.json');
  writeFileSync(badKey, JSON.stringify({ iteratons: 5 }));
  const bad = cli(['distill', '--dataset', data, '--config', badKey, '--dry-run']);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /Unrecognized key\(s\) in object: 'iteratons'/);
  const notYaml = join(dir, 'x.yml');
  writeFileSync(notYaml, 'a: [1, 2');
  assert.match(
    cli(['distill', '--config', notYaml, '--dry-run']).stderr,
    /--config .*x\.yml is not valid YAML/,
  );

  const m = cli(['methods', 'dm']);
  assert.equal(m.status, 0, m.stderr);
  assert.match(m.stdout, /batchReal \(number, default 256\): Real images per class per iteration\./);
  assert.equal(cli(['methods', 'nope']).status, 2);
  assert.match(cli(['--version']).stdout, /^distillery \d+\.\d+\.\d+ \(libtorch [\d.]+, node [\d.]+\)/);
  assert.match(cli(['distill', '--help']).stdout, /distillation method: dc, dsa,[^]*\bdm\b/);
});

test('export: .npy files NumPy loads (header checked here, values equal the artifact), one PNG per image; the safetensors metadata de-normalises alone', () => {
  const out = join(tempDir('rel-export'), 'run');
  assert.equal(cli([...base(out), '--eval-runs', '0']).status, 0);
  const art = join(out, 'artifact');
  const r = cli(['export', art, '--format', 'npy', '--json']);
  assert.equal(r.status, 0, r.stderr);
  const bytes = readFileSync(join(art, 'npy', 'images.npy'));
  assert.equal(bytes.subarray(0, 6).toString('latin1'), '\x93NUMPY');
  const headerLength = bytes.readUInt16LE(8);
  assert.equal((10 + headerLength) % 64, 0, 'the data starts 64-byte aligned');
  const header = bytes.subarray(10, 10 + headerLength).toString('latin1');
  assert.match(header, /^\{'descr': '<f4', 'fortran_order': False, 'shape': \(2, 3, 16, 16\), \} *\n$/);
  const values = new Float32Array(
    bytes.buffer.slice(bytes.byteOffset + 10 + headerLength, bytes.byteOffset + bytes.length),
  );
  const { tensors, metadata } = E.loadSafetensors(join(art, 'synthetic.safetensors'));
  assert.deepEqual([...values], tensors.images.toNumbers());
  assert.match(
    readFileSync(join(art, 'npy', 'labels.npy'))
      .subarray(10, 80)
      .toString('latin1'),
    /'descr': '<i8'.*'shape': \(2,\)/,
  );
  assert.deepEqual(JSON.parse(metadata.classes), ['left', 'right']);
  assert.equal(JSON.parse(metadata.std).length, 3);
  const png = cli(['export', art, '--format', 'png', '--out', join(out, 'png'), '--json']);
  assert.equal(png.status, 0, png.stderr);
  assert.deepEqual(
    JSON.parse(png.stdout.trim()).files.map((f: string) => f.slice(out.length)),
    ['/png/0-left/0.png', '/png/1-right/0.png'],
  );
  assert.equal(cli(['export', art, '--format', 'tiff']).status, 2);
});

test("one seed derivation: distillery eval reproduces distill's own evaluation of the artifact", () => {
  const out = join(tempDir('rel-seed'), 'run');
  const lastJson = (stdout: string) => JSON.parse(stdout.trim().split('\n').pop() as string);
  const run = cli([
    ...base(out),
    '--eval-runs',
    '1',
    '--eval-epochs',
    '2',
    '--eval-precision',
    'float32',
    '--json',
  ]);
  assert.equal(run.status, 0, run.stderr);
  const result = lastJson(run.stdout);
  const evaluate = (...extra: string[]) =>
    cli([
      'eval',
      join(out, 'artifact'),
      '--runs',
      '1',
      '--epochs',
      '2',
      '--no-baselines',
      '--json',
      ...extra,
    ]);
  const e = evaluate('--precision', 'float32');
  assert.equal(e.status, 0, e.stderr);
  const evaluated = lastJson(e.stdout);
  // Same seed (the run's seed and iterations through evaluationSeed), so the same networks and number.
  assert.equal(evaluated.evaluationSeed, result.evaluationSeed);
  assert.equal(evaluated.distilled.ConvNet.mean, result.final.ConvNet.mean);
  assert.notEqual(lastJson(evaluate('--seed', '9').stdout).evaluationSeed, result.evaluationSeed);
});

test('the library refuses to replace a run unless asked (overwrite)', async () => {
  const runDir = join(tempDir('rel-api'), 'run');
  const input = { method: 'dm', dataset: data, ipc: 1, iterations: 1, evalRuns: 0 } as const;
  await distill(input, { runDir });
  await assert.rejects(distill(input, { runDir }), /already holds a run: resume it .*overwrite: true/);
  const again = await distill({ ...input, seed: 1 }, { runDir, overwrite: true });
  assert.equal(again.config.seed, 1);
  assert.equal(JSON.parse(readFileSync(join(runDir, 'run.json'), 'utf8')).config.seed, 1);
});
