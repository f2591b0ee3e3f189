// The command line as a user runs it: exit codes, --json output, artifacts on disk.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir, writeLeftRightFolder } from '../fixtures.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

function cli(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [MAIN, ...args], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const folderDataset = () => writeLeftRightFolder('cli-data');

test('datasets: MNIST is available, others say how to get them (JSON)', () => {
  const r = cli(['datasets', '--json']);
  assert.equal(r.status, 0, r.stderr);
  const result = JSON.parse(r.stdout.trim().split('\n').pop() as string);
  const byName = Object.fromEntries(result.datasets.map((d: { name: string }) => [d.name, d]));
  assert.equal(byName.mnist.available, true);
  assert.equal(byName.cifar10.available, false);
  assert.match(byName.cifar10.detail, /--data-dir/);
});

test('coreset then eval, end to end on a small image folder', () => {
  const data = folderDataset();
  const out = join(tempDir('cli-out'), 'herding');
  const c = cli(
    [
      'coreset',
      '--dataset',
      data,
      '--method',
      'herding',
      '--ipc',
      '2',
      '--out',
      out,
      '--feature-epochs',
      '1',
      '--json',
    ],
    { DISTILLERY_CACHE: tempDir('cli-cache') },
  );
  assert.equal(c.status, 0, c.stderr);
  for (const f of ['synthetic.safetensors', 'meta.json', 'grid.png']) assert.ok(existsSync(join(out, f)), f);
  const e = cli([
    'eval',
    out,
    '--runs',
    '1',
    '--epochs',
    '2',
    '--no-baselines',
    '--models',
    'ConvNetW32',
    '--precision',
    'bfloat16',
    '--json',
  ]);
  assert.equal(e.status, 0, e.stderr);
  const lines = e.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.equal(lines.filter((l) => l.type === 'run').length, 1);
  const result = lines.pop();
  assert.equal(result.type, 'result');
  assert.ok(result.distilled.ConvNetW32.mean >= 0 && result.distilled.ConvNetW32.mean <= 1);
  assert.equal(result.protocol.ConvNetW32.precision, 'bfloat16');
  assert.equal(result.protocol.ConvNetW32.augment, 'color_crop_cutout_scale_rotate');
  // DC's protocol on ConvNetBN: crop_noise (get_daparam names exactly that model), 1000 epochs unless given.
  const dc = (extra: string[]) =>
    cli(['eval', out, '--runs', '1', '--no-baselines', '--models', 'ConvNetBN', '--json', ...extra]);
  const r = dc(['--augment', 'dc', '--epochs', '1']);
  assert.equal(r.status, 0, r.stderr);
  const proto = JSON.parse(r.stdout.trim().split('\n').pop() as string).protocol.ConvNetBN;
  assert.equal(proto.augment, 'dc:crop_noise');
  const dsa = JSON.parse(dc(['--augment', 'dsa', '--epochs', '1']).stdout.trim().split('\n').pop() as string);
  assert.equal(dsa.protocol.ConvNetBN.augment, 'color_crop_cutout_scale_rotate');
  const none = JSON.parse(dc(['--no-augment', '--epochs', '1']).stdout.trim().split('\n').pop() as string);
  assert.equal(none.protocol.ConvNetBN.augment, 'none');
  const bad = dc(['--augment', 'dc:spin']);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--augment: unknown DC augmentation 'spin'/);
});

test('bad input: usage errors exit 2, missing data exits 1, both with one clear line', () => {
  const unknown = cli(['coreset', '--dataset', 'mnist', '--method', 'magic', '--ipc', '1']);
  assert.equal(unknown.status, 2);
  assert.match(
    unknown.stderr,
    /unknown coreset method 'magic' \(expected random, herding, kcenter, forgetting\)/,
  );
  const badIpc = cli(['coreset', '--dataset', 'mnist', '--method', 'random', '--ipc', 'ten']);
  assert.equal(badIpc.status, 2);
  assert.match(badIpc.stderr, /expected a positive integer, got 'ten'/);
  const missing = cli(['eval', tempDir('empty')]);
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /is not a valid Distillery artifact: .*meta\.json is missing/);
  assert.doesNotMatch(missing.stderr, /at .*\.js:\d+/, 'no stack trace');
  const badPrecision = cli(['eval', tempDir('empty'), '--precision', 'fp16']);
  assert.equal(badPrecision.status, 2);
  assert.match(badPrecision.stderr, /--precision: expected float32, bfloat16 or auto, got 'fp16'/);
  const help = cli(['eval', '--help']);
  assert.equal(help.status, 0);
  assert.match(help.stdout, /--models <list>/);
});

test('nas and privacy: a tiny search from the command line; bad arguments exit 2 with the reason', () => {
  const data = folderDataset();
  const out = tempDir('cli-nas');
  const env = { DISTILLERY_CACHE: tempDir('cli-nas-cache') };
  const nas = cli(
    [
      'nas',
      '--dataset',
      data,
      '--proxies',
      'random,early-stopping',
      '--ipc',
      '1',
      '--architectures',
      '2',
      '--depths',
      '1',
      '--widths',
      '8',
      '--activations',
      'AR',
      '--norms',
      'IN,NN',
      '--pools',
      'AP',
      '--proxy-epochs',
      '1',
      '--real-epochs',
      '0',
      '--val-per-class',
      '1',
      '--out',
      out,
    ],
    env,
  );
  assert.equal(nas.status, 0, nas.stderr);
  assert.match(nas.stdout, /\| random \| -?\d\.\d{3} \|/);
  for (const f of ['nas.json', 'nas.html']) assert.ok(existsSync(join(out, f)), f);
  // `report` recognises an application's directory.
  const report = cli(['report', out], env);
  assert.equal(report.status, 0, report.stderr);
  assert.match(readFileSync(join(out, 'report.html'), 'utf8'), /Small sets as architecture-search proxies/);
  const badWidth = cli(['nas', '--dataset', data, '--widths', '0', '--out', out], env);
  assert.equal(badWidth.status, 2);
  assert.match(badWidth.stderr, /--widths takes positive integers/);
  const badProxy = cli(['nas', '--dataset', data, '--proxies', 'magic', '--out', out], env);
  assert.equal(badProxy.status, 2);
  assert.match(badProxy.stderr, /unknown set 'magic'/);
  const badTarget = cli(['privacy', '--dataset', data, '--targets', 'real,magic', '--out', out], env);
  assert.equal(badTarget.status, 2);
  assert.match(badTarget.stderr, /privacy --targets: unknown set 'magic'/);
  const badPool = cli(['privacy', '--dataset', data, '--pool-per-class', '99', '--out', out], env);
  assert.equal(badPool.status, 2);
  assert.match(badPool.stderr, /--pool-per-class must be between 2 and 5/);
  const badStages = cli(['continual', '--dataset', data, '--ipc', '1', '--stages', '3', '--out', out], env);
  assert.equal(badStages.status, 2);
  assert.match(badStages.stderr, /--stages must be between 1 and the 2 classes/);
});
