// The run directory: run.json (resolved config, seed, versions, dataset checksum),
// metrics.jsonl, checkpoint.safetensors, and the final artifact/.
import { appendFileSync, closeSync, existsSync, openSync, readFileSync, rmSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import * as E from '../engine/index.js';
import {
  makeDirectory,
  processAlive,
  removeStaleTempFiles,
  writeAll,
  writeFileAtomic,
} from '../engine/files.js';
import type { DistillConfig } from './config.js';

export interface RunRecord {
  config: DistillConfig;
  versions: Record<string, string>;
  dataset: { name: string; checksum: string; source: string };
  threads: number;
  createdAt: string;
}

export interface Checkpoint {
  iteration: number;
  tensors: Record<string, E.Tensor>;
  /** JSON strings by key (the session's optimizer groups, the synthetic set's description). */
  metadata: Record<string, string>;
}

/** Who holds a run directory's lock (run.lock). */
export interface LockOwner {
  pid: number;
  host: string;
  since: string;
}

export class RunDirError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RunDirError';
  }
}

export class RunDir {
  private release: (() => void) | null = null;

  constructor(readonly path: string) {}

  get runJson(): string {
    return join(this.path, 'run.json');
  }
  get metrics(): string {
    return join(this.path, 'metrics.jsonl');
  }
  get checkpoint(): string {
    return join(this.path, 'checkpoint.safetensors');
  }
  get artifact(): string {
    return join(this.path, 'artifact');
  }
  get lockFile(): string {
    return join(this.path, 'run.lock');
  }

  /**
   * Takes the directory for this process until unlock() or exit: two runs given the same --out would
   * interleave their metrics and checkpoints. A lock left by a process that no longer runs (killed)
   * is taken over; one held by a running process is refused, naming it. Creates the directory.
   */
  lock(): void {
    if (this.release) return;
    try {
      makeDirectory(this.path);
    } catch (e) {
      throw new RunDirError(`run directory: ${errorText(e)}`);
    }
    const me: LockOwner = { pid: process.pid, host: hostname(), since: new Date().toISOString() };
    for (let attempt = 0; attempt < 2; attempt++) {
      let fd: number;
      try {
        fd = openSync(this.lockFile, 'wx');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST')
          throw new RunDirError(`cannot lock run directory ${this.path}: ${errorText(e)}`);
        this.clearStaleLock();
        continue;
      }
      try {
        writeAll(fd, Buffer.from(JSON.stringify(me)));
      } finally {
        closeSync(fd);
      }
      const file = this.lockFile;
      const onExit = () => rmSync(file, { force: true });
      process.on('exit', onExit);
      this.release = () => {
        process.off('exit', onExit);
        onExit();
      };
      return;
    }
    throw new RunDirError(`cannot lock run directory ${this.path}: another process took it at the same time`);
  }

  /** Releases lock() (idempotent). */
  unlock(): void {
    this.release?.();
    this.release = null;
  }

  /** Removes the lock of a process that no longer runs; throws if a running process holds it. */
  private clearStaleLock(): void {
    let owner: LockOwner | null = null;
    try {
      owner = JSON.parse(readFileSync(this.lockFile, 'utf8')) as LockOwner;
    } catch {
      // Torn or unreadable: its writer died between creating and writing it.
    }
    if (owner && (owner.host !== hostname() || processAlive(owner.pid))) {
      const where = owner.host === hostname() ? '' : ` on host ${owner.host}`;
      throw new RunDirError(
        `run directory ${this.path} is in use by process ${owner.pid}${where} (since ${owner.since}); wait for it to finish, or choose another --out. If that process is gone, delete ${this.lockFile}`,
      );
    }
    rmSync(this.lockFile, { force: true });
  }

  /** Removes temp files of writes that a killed process left behind (here and in artifact/). */
  removeStaleTempFiles(): string[] {
    return [...removeStaleTempFiles(this.path), ...removeStaleTempFiles(this.artifact)];
  }

  create(record: RunRecord): void {
    try {
      makeDirectory(this.path);
    } catch (e) {
      throw new RunDirError(`run directory: ${errorText(e)}`);
    }
    writeFileAtomic(this.runJson, `${JSON.stringify(record, null, 2)}\n`);
    writeFileAtomic(this.metrics, '');
  }

  readRecord(): RunRecord {
    if (!existsSync(this.runJson)) throw new RunDirError(`${this.path} is not a run directory (no run.json)`);
    try {
      return JSON.parse(readFileSync(this.runJson, 'utf8')) as RunRecord;
    } catch (e) {
      throw new RunDirError(`cannot read ${this.runJson}: ${errorText(e)}`);
    }
  }

  log(entry: Record<string, unknown>): void {
    try {
      appendFileSync(this.metrics, `${JSON.stringify(entry)}\n`);
    } catch (e) {
      throw new RunDirError(`cannot append to ${this.metrics}: ${errorText(e)}`);
    }
  }

  /**
   * The logged entries. A torn last line (the process was killed while appending it) is dropped; a
   * malformed line anywhere else is an error naming the file and line.
   */
  readMetrics(): Record<string, unknown>[] {
    if (!existsSync(this.metrics)) return [];
    const lines = readFileSync(this.metrics, 'utf8').split('\n');
    const out: Record<string, unknown>[] = [];
    lines.forEach((line, i) => {
      if (!line) return;
      try {
        out.push(JSON.parse(line) as Record<string, unknown>);
      } catch (e) {
        if (i === lines.length - 1) return; // no newline after it: a torn append
        throw new RunDirError(
          `${this.metrics} line ${i + 1} is not JSON (${errorText(e)}); remove that line`,
        );
      }
    });
    return out;
  }

  /** Drops metric lines written after `iteration` (by a run that died before its next checkpoint). */
  truncateMetrics(iteration: number): void {
    const kept = this.readMetrics().filter(
      (m) => typeof m.iteration !== 'number' || m.iteration <= iteration,
    );
    writeFileAtomic(this.metrics, kept.map((m) => `${JSON.stringify(m)}\n`).join(''));
  }

  saveCheckpoint(c: Checkpoint): void {
    E.saveSafetensors(this.checkpoint, c.tensors, { ...c.metadata, iteration: String(c.iteration) });
  }

  loadCheckpoint(): Checkpoint | null {
    if (!existsSync(this.checkpoint)) return null;
    const { tensors, metadata } = E.loadSafetensors(this.checkpoint);
    return { iteration: Number(metadata.iteration), tensors, metadata };
  }
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
