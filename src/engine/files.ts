// Atomic file writes: the data goes to a temp file beside the target, every byte
// of it (a short write on a nearly full disk is retried, and a write that makes
// no progress fails), is synced, then renamed over the target, so a crash or a
// full disk never leaves a half-written file in place of a good one.
import {
  accessSync,
  closeSync,
  constants,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';

/** fs.writeSync's shape (fd, buffer, offset, length) -> bytes written; replaceable for fault injection. */
export type WriteFn = (fd: number, buffer: Uint8Array, offset: number, length: number) => number;

const TMP_MARK = '.tmp-';

/**
 * Writes all of `chunk` to `fd`, retrying short writes; throws when a write makes no progress.
 *
 * @example writeAll(fd, Buffer.from('hello')) // 5 bytes, even if the kernel takes them 2 at a time
 */
export function writeAll(fd: number, chunk: Uint8Array, write: WriteFn = writeSync): void {
  let offset = 0;
  while (offset < chunk.length) {
    const n = write(fd, chunk, offset, chunk.length - offset);
    if (!(n > 0))
      throw new Error(`wrote ${offset} of ${chunk.length} bytes, then no progress (is the disk full?)`);
    offset += n;
  }
}

export function writeFileAtomic(
  path: string,
  data: string | Uint8Array | readonly Uint8Array[],
  o: { write?: WriteFn } = {},
): void {
  const chunks =
    typeof data === 'string' ? [Buffer.from(data, 'utf8')] : data instanceof Uint8Array ? [data] : data;
  const tmp = join(dirname(path), `.${basename(path)}${TMP_MARK}${process.pid}`);
  let fd: number | null = null;
  try {
    fd = openSync(tmp, 'w');
    for (const chunk of chunks) writeAll(fd, chunk, o.write);
    fsyncSync(fd);
    closeSync(fd);
    fd = null;
    renameSync(tmp, path);
  } catch (e) {
    if (fd !== null) closeSync(fd);
    rmSync(tmp, { force: true });
    throw new Error(`cannot write ${path}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** Whether a process with this id is running on this machine (EPERM: it exists, owned by another user). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes the temp files writeFileAtomic left in `dir` when its process was killed mid-write (those
 * of processes still running are kept). Returns the names removed.
 */
export function removeStaleTempFiles(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const stale = names.filter((name) => {
    const at = name.lastIndexOf(TMP_MARK);
    if (!name.startsWith('.') || at < 0) return false;
    const pid = Number(name.slice(at + TMP_MARK.length));
    return Number.isInteger(pid) && pid > 0 && pid !== process.pid && !processAlive(pid);
  });
  for (const name of stale) rmSync(join(dir, name), { force: true });
  return stale;
}

/**
 * mkdir -p with a precise error (returns the outermost directory it created, or null): Node's recursive mkdir reports a read-only file system as ENOENT
 * (and loops on some pseudo file systems), so the nearest existing ancestor is checked first.
 *
 * @example makeDirectory('runs/dm-mnist') // or throws "cannot create runs/dm-mnist: / is read-only ..."
 */
export function makeDirectory(path: string): string | null {
  let ancestor = resolve(path);
  while (!exists(ancestor) && dirname(ancestor) !== ancestor) ancestor = dirname(ancestor);
  const fail = (why: string) => {
    throw new Error(`cannot create directory ${path}: ${why}`);
  };
  if (!statSync(ancestor).isDirectory()) fail(`${ancestor} is a file, not a directory`);
  if (ancestor === resolve(path)) return null;
  try {
    accessSync(ancestor, constants.W_OK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    fail(
      code === 'EROFS'
        ? `${ancestor} is on a read-only file system; choose a writable location`
        : `${ancestor} is not writable (${code}); choose a writable location`,
    );
  }
  try {
    mkdirSync(path, { recursive: true });
  } catch (e) {
    fail(e instanceof Error ? e.message : String(e));
  }
  // The outermost directory created: ancestor's child on the way to path.
  let top = resolve(path);
  while (dirname(top) !== ancestor) top = dirname(top);
  return top;
}

function exists(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch {
    return false;
  }
}
