// The run directory: run.json (resolved config, seed, versions, dataset checksum),
// metrics.jsonl, checkpoint.safetensors, and the final artifact/.
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as E from '../engine/index.js';
import { writeFileAtomic } from '../engine/files.js';
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

export class RunDir {
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

  create(record: RunRecord): void {
    try {
      mkdirSync(this.path, { recursive: true });
    } catch (e) {
      throw new Error(
        `cannot create run directory ${this.path}: ${e instanceof Error ? e.message : String(e)}`,
      );
    }
    writeFileAtomic(this.runJson, `${JSON.stringify(record, null, 2)}\n`);
    writeFileAtomic(this.metrics, '');
  }

  readRecord(): RunRecord {
    if (!existsSync(this.runJson)) throw new Error(`${this.path} is not a run directory (no run.json)`);
    return JSON.parse(readFileSync(this.runJson, 'utf8')) as RunRecord;
  }

  log(entry: Record<string, unknown>): void {
    appendFileSync(this.metrics, `${JSON.stringify(entry)}\n`);
  }

  readMetrics(): Record<string, unknown>[] {
    if (!existsSync(this.metrics)) return [];
    return readFileSync(this.metrics, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
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
