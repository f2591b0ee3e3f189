// The stop-and-resume check the method tests share: a run stopped after `stopAt` iterations and
// resumed must end with a checkpoint bit-identical to an uninterrupted run's.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import * as E from '../src/engine/index.js';
import type { DistillConfig } from '../src/distill/config.js';
import { Distiller, type DistillResult } from '../src/distill/distiller.js';
import { RunDir } from '../src/distill/rundir.js';
import { tempDir } from './fixtures.js';

async function runTo(out: string, config: DistillConfig, stopAt?: number): Promise<DistillResult> {
  const d: Distiller = new Distiller(config, new RunDir(out), {
    onIteration: ({ iteration }) => {
      if (iteration === stopAt) d.requestStop();
    },
  });
  return d.run({ resume: false });
}

/**
 * Runs `config()` uninterrupted (as `full` when given: e.g. with evaluation, which the checkpoint does
 * not depend on) and stopped at `stopAt` then resumed; asserts every checkpoint tensor is identical and
 * returns the uninterrupted run's checkpoint tensors, run directory and result.
 */
export async function assertResumesBitIdentical(
  name: string,
  config: () => DistillConfig,
  stopAt: number,
  full?: DistillConfig,
): Promise<{
  tensors: Record<string, E.Tensor>;
  metadata: Record<string, string>;
  dir: string;
  result: DistillResult;
}> {
  const dir = join(tempDir(`${name}-full`), 'run');
  const result = await runTo(dir, full ?? config());
  const part = join(tempDir(`${name}-part`), 'run');
  assert.ok((await runTo(part, config(), stopAt)).interrupted, 'the run stopped');
  await new Distiller(config(), new RunDir(part)).run({ resume: true });
  const a = E.loadSafetensors(join(dir, 'checkpoint.safetensors'));
  const b = E.loadSafetensors(join(part, 'checkpoint.safetensors'));
  assert.deepEqual(Object.keys(a.tensors).sort(), Object.keys(b.tensors).sort());
  for (const [key, t] of Object.entries(a.tensors))
    assert.deepEqual(t.toNumbers(), b.tensors[key].toNumbers(), `${key} identical`);
  return { tensors: a.tensors, metadata: a.metadata, dir, result };
}
