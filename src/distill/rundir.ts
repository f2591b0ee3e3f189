// The run directory: run.json (resolved config, seed, versions, dataset checksum),
// metrics.jsonl, checkpoint.safetensors, and the final artifact/.
import {
  appendFileSync,
  existsSync,
  linkSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
} from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import * as E from '../engine/index.js';
import { makeDirectory, processAlive, removeStaleTempFiles, writeFileAtomic } from '../engine/files.js';
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

/** A lock from another host is taken over once its heartbeat is this old (its run is gone). */
export const LOCK_STALE_MS = 30 * 60 * 1000;
/** Lock files this process holds (a restarted container may reuse a dead run's pid). */
const HELD = new Set<string>();

export class RunDir {
  private release: (() => void) | null = null;
  private lastBeat = 0;
  /** The outermost directory lock() created (null: it existed). */
  createdRoot: string | null = null;

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
   * interleave their metrics and checkpoints. The lock file appears whole or not at all (written
   * aside, then hard-linked into place). A lock whose process no longer runs is taken over, as is
   * one from another host (a restarted container) whose heartbeat is older than LOCK_STALE_MS; a
   * live one is refused, naming its process. Creates the directory (`createdRoot` records the
   * outermost directory it made, for a failed start's cleanup).
   */
  lock(): void {
    if (this.release) return;
    try {
      this.createdRoot = makeDirectory(this.path);
    } catch (e) {
      throw new RunDirError(`run directory: ${errorText(e)}`);
    }
    const me: LockOwner = { pid: process.pid, host: hostname(), since: new Date().toISOString() };
    const aside = `${this.lockFile}.${process.pid}`;
    writeFileAtomic(aside, JSON.stringify(me));
    try {
      for (let attempt = 0; attempt < 3; attempt++) {
        try {
          linkSync(aside, this.lockFile);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EEXIST')
            throw new RunDirError(`cannot lock run directory ${this.path}: ${errorText(e)}`);
          this.takeOverStaleLock();
          continue;
        }
        this.holdLock();
        return;
      }
    } finally {
      rmSync(aside, { force: true });
    }
    throw new RunDirError(`cannot lock run directory ${this.path}: another process took it at the same time`);
  }

  private holdLock(): void {
    const file = this.lockFile;
    HELD.add(file);
    const onExit = () => rmSync(file, { force: true });
    process.on('exit', onExit);
    this.release = () => {
      process.off('exit', onExit);
      HELD.delete(file);
      onExit();
    };
  }

  /** Releases lock() (idempotent). */
  unlock(): void {
    this.release?.();
    this.release = null;
  }

  /** Marks the lock alive (at most every few seconds): another host judges staleness by it. */
  heartbeat(): void {
    if (!this.release) return;
    const now = Date.now();
    if (now - this.lastBeat < 5000) return;
    this.lastBeat = now;
    try {
      utimesSync(this.lockFile, now / 1000, now / 1000);
    } catch {
      // A missing lock is noticed by the next process, not here.
    }
  }

  /** Whether the lock's owner is gone: this process's id but not held here, a dead pid, or a silent host. */
  private isStale(owner: LockOwner | null, ageMs: number): boolean {
    if (!owner) return ageMs > 10_000; // unreadable: a copy never written whole, unless it is brand new
    if (owner.host !== hostname()) return ageMs > LOCK_STALE_MS;
    if (owner.pid === process.pid) return !HELD.has(this.lockFile); // a restarted container reusing the pid
    return !processAlive(owner.pid);
  }

  /** Moves a stale lock out of the way (atomically, by rename); throws if a live process holds it. */
  private takeOverStaleLock(): void {
    let text = '';
    let ageMs = 0;
    try {
      text = readFileSync(this.lockFile, 'utf8');
      ageMs = Date.now() - statSync(this.lockFile).mtimeMs;
    } catch {
      return; // gone meanwhile: try again
    }
    let owner: LockOwner | null = null;
    try {
      owner = JSON.parse(text) as LockOwner;
    } catch {
      // judged by age below
    }
    if (!this.isStale(owner, ageMs)) {
      const where = owner && owner.host !== hostname() ? ` on host ${owner.host}` : '';
      throw new RunDirError(
        `run directory ${this.path} is in use by process ${owner?.pid ?? '?'}${where} (since ${owner?.since ?? '?'}); wait for it to finish, or choose another --out. If that process is gone, delete ${this.lockFile}`,
      );
    }
    const moved = `${this.lockFile}.stale-${process.pid}`;
    try {
      renameSync(this.lockFile, moved);
    } catch {
      return; // another process moved it first
    }
    // Another process may have replaced the stale lock with its own between the read and the rename.
    if (readFileSync(moved, 'utf8') !== text) {
      try {
        linkSync(moved, this.lockFile);
      } catch {
        // someone else holds it now; our next attempt sees their lock
      }
    }
    rmSync(moved, { force: true });
  }

  /** Deletes the run's files (run.json, metrics, checkpoint, artifact/), keeping the lock and anything else. */
  removeRun(): void {
    for (const f of [this.runJson, this.metrics, this.checkpoint, this.artifact])
      rmSync(f, { recursive: true, force: true });
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
