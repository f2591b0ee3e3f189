// The run directory under failure: short writes on a full disk, two processes on one directory, a
// torn metrics line, temp files of killed writes, unwritable locations (issue 16, items 1-4).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { makeDirectory, writeAll, writeFileAtomic, type WriteFn } from '../../src/engine/files.js';
import { LOCK_STALE_MS, RunDir } from '../../src/distill/rundir.js';
import { tempDir } from '../fixtures.js';

/** The id of a process that has exited (its lock or temp files are stale). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], {
    encoding: 'utf8',
  });
  return Number(r.stdout);
}

test('writes retry short writes, and a disk that fills up fails before the rename: the old file survives', () => {
  const got: number[] = [];
  const threeAtATime: WriteFn = (_fd, buf, off, len) => {
    const n = Math.min(3, len);
    got.push(...buf.subarray(off, off + n));
    return n;
  };
  writeAll(-1, Buffer.from('hello world'), threeAtATime);
  assert.equal(Buffer.from(got).toString(), 'hello world');

  const dir = tempDir('full-disk');
  const path = join(dir, 'checkpoint.safetensors');
  writeFileAtomic(path, 'the good checkpoint');
  // A nearly full disk: the kernel takes 10 bytes, then nothing more.
  let room = 10;
  const full: WriteFn = (fd, buf, off, len) => {
    const n = Math.min(room, len);
    room -= n;
    if (n > 0) writeAll(fd, buf.subarray(off, off + n));
    return n;
  };
  assert.throws(
    () => writeFileAtomic(path, Buffer.alloc(1000, 1), { write: full }),
    /cannot write .*checkpoint\.safetensors: wrote 10 of 1000 bytes, then no progress \(is the disk full\?\)/,
  );
  assert.equal(readFileSync(path, 'utf8'), 'the good checkpoint');
  assert.deepEqual(readdirSync(dir), ['checkpoint.safetensors'], 'no temp file left');
});

test('a run directory is locked for the life of a run: a second run is refused naming the first; a stale lock is taken over', () => {
  const path = join(tempDir('lock'), 'run');
  const a = new RunDir(path);
  a.lock();
  assert.throws(
    () => new RunDir(path).lock(),
    new RegExp(
      `run directory .*run is in use by process ${process.pid} \\(since .*\\); wait for it to finish, or choose another --out`,
    ),
  );
  a.unlock();
  assert.equal(existsSync(join(path, 'run.lock')), false, 'unlock removes the lock');
  const b = new RunDir(path);
  b.lock();
  b.unlock();
  // A lock left by a killed process is taken over.
  writeFileSync(join(path, 'run.lock'), JSON.stringify({ pid: deadPid(), host: hostname(), since: 'then' }));
  const c = new RunDir(path);
  c.lock();
  assert.match(readFileSync(join(path, 'run.lock'), 'utf8'), new RegExp(`"pid":${process.pid}`));
  c.unlock();
  // A restarted container: the same host name and pid (1, say) as the dead run, but not held here.
  writeFileSync(
    join(path, 'run.lock'),
    JSON.stringify({ pid: process.pid, host: hostname(), since: 'then' }),
  );
  const d = new RunDir(path);
  d.lock();
  d.unlock();
  // Another host: refused while its heartbeat is fresh, taken over once it is older than LOCK_STALE_MS.
  const lockFile = join(path, 'run.lock');
  writeFileSync(lockFile, JSON.stringify({ pid: 4242, host: 'elsewhere', since: 'then' }));
  assert.throws(() => new RunDir(path).lock(), /in use by process 4242 on host elsewhere/);
  const old = (Date.now() - LOCK_STALE_MS - 60_000) / 1000;
  utimesSync(lockFile, old, old);
  const e = new RunDir(path);
  e.lock();
  e.unlock();
  // An unreadable lock is someone's lock being born unless it is old.
  writeFileSync(lockFile, '{"pid":');
  assert.throws(() => new RunDir(path).lock(), /in use by process \?/);
  utimesSync(lockFile, Date.now() / 1000 - 60, Date.now() / 1000 - 60);
  const f = new RunDir(path);
  f.lock();
  f.unlock();
  assert.deepEqual(readdirSync(path), [], 'no lock or aside files left');
});

test('a torn last line of metrics.jsonl is dropped; a malformed line elsewhere names the file and line', () => {
  const run = new RunDir(tempDir('metrics'));
  writeFileSync(run.metrics, '{"iteration":1,"loss":0.5}\n{"iteration":2,"loss":0.4}\n{"iteration":3,"lo');
  assert.deepEqual(
    run.readMetrics().map((m) => m.iteration),
    [1, 2],
  );
  run.truncateMetrics(2);
  assert.equal(readFileSync(run.metrics, 'utf8'), '{"iteration":1,"loss":0.5}\n{"iteration":2,"loss":0.4}\n');
  writeFileSync(run.metrics, '{"iteration":1}\n{"iter\n{"iteration":3}\n');
  assert.throws(() => run.readMetrics(), /metrics\.jsonl line 2 is not JSON .*; remove that line/);
});

test('a failed append names the metrics file', () => {
  const run = new RunDir(tempDir('append'));
  makeDirectory(run.metrics); // a directory where the file should be: appends fail (EISDIR), as on a full disk
  assert.throws(() => run.log({ iteration: 1 }), /cannot append to .*metrics\.jsonl: EISDIR/);
});

test('temp files of killed writes are removed; those of running processes are kept', () => {
  const run = new RunDir(tempDir('stale'));
  makeDirectory(run.artifact);
  const stale = `.checkpoint.safetensors.tmp-${deadPid()}`;
  const live = `.metrics.jsonl.tmp-${process.pid}`;
  for (const name of [stale, live]) writeFileSync(join(run.path, name), 'x');
  writeFileSync(join(run.artifact, `.meta.json.tmp-${deadPid()}`), 'x');
  assert.equal(run.removeStaleTempFiles().length, 2);
  assert.deepEqual(readdirSync(run.path).sort(), [live, 'artifact']);
  assert.deepEqual(readdirSync(run.artifact), []);
});

test('an output location under a file, or on a read-only file system, is named as such (not ENOENT)', (t) => {
  const dir = tempDir('ro');
  writeFileSync(join(dir, 'file'), 'x');
  assert.throws(
    () => new RunDir(join(dir, 'file', 'run')).lock(),
    /run directory: cannot create directory .*file\/run: .*file is a file, not a directory/,
  );
  const mount = join(dir, 'mnt');
  makeDirectory(mount);
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=64k', 'tmpfs', mount]);
  if (r.status !== 0) {
    t.skip('mounting a read-only tmpfs needs root');
    return;
  }
  try {
    assert.throws(
      () => new RunDir(join(mount, 'a', 'run')).lock(),
      /is on a read-only file system; choose a writable location/,
    );
  } finally {
    spawnSync('umount', [mount]);
  }
});
