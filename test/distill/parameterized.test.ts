// The framework with non-pixel parameterizations and learnable labels: a run stopped after a
// checkpoint resumes bit-identical (decoder and label optimizer groups included), the artifact
// stores the parameterization and its storage budget and decodes on load, and distill() (the
// programmatic entry point) returns the loaded artifact.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as E from '../../src/engine/index.js';
import { loadArtifact } from '../../src/artifact/artifact.js';
import { resolveConfig } from '../../src/distill/config.js';
import { Distiller } from '../../src/distill/distiller.js';
import { RunDir } from '../../src/distill/rundir.js';
import { SyntheticSet } from '../../src/distill/synthetic.js';
import { loadDataset } from '../../src/data/registry.js';
import { distill } from '../../src/index.js';
import { tempDir, writeSquaresFile } from '../fixtures.js';

const data = writeSquaresFile({ classes: 3, perClass: 20 });

function config(extra: Record<string, unknown>) {
  return resolveConfig({
    dataset: data,
    method: 'dc',
    ipc: 3,
    model: 'ConvNetW8',
    iterations: 4,
    checkpointEvery: 2,
    evalRuns: 0,
    init: 'real',
    methodConfig: { batchReal: 8, outerLoop: 2, innerLoop: 1 },
    labels: { learn: true },
    ...extra,
  });
}

async function run(out: string, extra: Record<string, unknown>, stopAt?: number) {
  const d: Distiller = new Distiller(config(extra), new RunDir(out), {
    onIteration: ({ iteration }) => {
      if (iteration === stopAt) d.requestStop();
    },
  });
  return d.run({ resume: false });
}

for (const parameterization of [
  { kind: 'haba', hallucinators: 2 },
  { kind: 'linba', bases: 4, downsample: 2 },
  { kind: 'idc', factor: 2 },
]) {
  test(`${parameterization.kind} with learned labels: a stopped run resumes bit-identical; the artifact stores and decodes the parameterization`, async () => {
    const extra = { parameterization };
    const full = join(tempDir(`${parameterization.kind}-full`), 'run');
    await run(full, extra);
    const part = join(tempDir(`${parameterization.kind}-part`), 'run');
    assert.ok((await run(part, extra, 2)).interrupted);
    await new Distiller(config(extra), new RunDir(part)).run({ resume: true });
    const a = E.loadSafetensors(join(full, 'checkpoint.safetensors'));
    const b = E.loadSafetensors(join(part, 'checkpoint.safetensors'));
    assert.deepEqual(Object.keys(a.tensors).sort(), Object.keys(b.tensors).sort());
    for (const [key, t] of Object.entries(a.tensors))
      assert.deepEqual(t.toNumbers(), b.tensors[key].toNumbers(), `${key} identical`);
    assert.ok('set.labelLogits' in a.tensors && 'optimizer.labels.momentum.0' in a.tensors, 'labels learned');
    if (parameterization.kind === 'haba')
      assert.ok(
        Object.keys(a.tensors).some((k) => k.startsWith('optimizer.decoder.')),
        'decoder group stepped',
      );

    const art = loadArtifact(join(full, 'artifact'));
    assert.equal(art.meta.parameterization.kind, parameterization.kind);
    assert.equal(art.meta.ipc, 3);
    assert.equal(art.meta.labels, 'soft');
    assert.equal(art.meta.learnedLabels, true);
    assert.equal(art.images.size(0), 3 * art.meta.decodedPerClass);
    const s = art.meta.storage;
    assert.equal(s.budgetImages, 9);
    assert.equal(s.bytes, 4 * s.floats);
    // Stored floats of the parameterization (labels not counted) fit the budget of 9 images of 16x16.
    assert.ok(s.floats - art.labels.numel <= 9 * 256, `storage ${s.floats} floats`);
    // Tampered stored tensors no longer decode to the saved images: refused.
    const file = join(full, 'artifact', 'synthetic.safetensors');
    const saved = E.loadSafetensors(file);
    const key = Object.keys(saved.tensors).find((k) => k.startsWith('param.')) as string;
    E.saveSafetensors(file, { ...saved.tensors, [key]: saved.tensors[key].add(1) }, saved.metadata);
    assert.throws(() => loadArtifact(join(full, 'artifact')), /tensors do not decode to the saved images/);
  });
}

test('distill() runs a configuration and returns the result with the loaded artifact', async () => {
  const runDir = join(tempDir('api'), 'run');
  const r = await distill(
    { dataset: data, method: 'dm', ipc: 2, model: 'ConvNetW8', iterations: 2, evalRuns: 0 },
    { runDir },
  );
  assert.equal(r.interrupted, false);
  assert.ok(r.artifact, 'the artifact is loaded');
  assert.deepEqual(r.artifact.images.shape, [6, 1, 16, 16]);
  assert.equal(r.artifact.meta.parameterization.kind, 'pixels');
  assert.equal(r.config.iterations, 2);
  const bad = join(tempDir('api'), 'bad');
  await assert.rejects(
    distill(
      { dataset: data, method: 'dm', ipc: 2, parameterization: { kind: 'idc', factor: 3 } },
      { runDir: bad },
    ),
    /idc factor 3 does not divide the image size 16x16/,
  );
  assert.ok(!existsSync(join(bad, 'run.json')), 'a configuration that does not fit leaves no run behind');
  // A method's default parameterization gives way wholesale to another kind (no settings carried over).
  assert.deepEqual(resolveConfig({ method: 'idc', parameterization: { kind: 'linba' } }).parameterization, {
    kind: 'linba',
    bases: 16,
    downsample: 2,
  });
  assert.deepEqual(resolveConfig({ method: 'idc' }).parameterization, {
    kind: 'idc',
    factor: 2,
    initResize: 'nearest',
  });
  assert.deepEqual(resolveConfig({ method: 'idm' }).parameterization, {
    kind: 'idc',
    factor: 2,
    initResize: 'bilinear',
  });
});

test('label initialisation: uniform probabilities, or a teacher trained on the real data (its softmax); learned from hard as logits', () => {
  const ds = loadDataset(data);
  const uniform = SyntheticSet.create(ds, 2, 'real', new E.Generator(1), {
    labels: { init: 'uniform', learn: false },
  });
  assert.equal(uniform.labelForm, 'soft');
  assert.ok(
    uniform.labels
      .sub(1 / 3)
      .abs()
      .max()
      .item() < 1e-7,
    'every row 1/classes',
  );
  const teacher = SyntheticSet.create(ds, 2, 'real', new E.Generator(1), {
    labels: { init: 'teacher', learn: true },
  });
  assert.equal(teacher.labelForm, 'logits');
  assert.deepEqual(teacher.groups.labels, [teacher.labels], 'the logits are the labels group');
  // The teacher (DeepCore's selection network, trained on the real squares) knows their classes.
  const probs = teacher.decode().labels;
  assert.deepEqual(probs.argmax(1).toNumbers(), [0, 0, 1, 1, 2, 2]);
  assert.ok(probs.sum(1).sub(1).abs().max().item() < 1e-5);
  const hard = SyntheticSet.create(ds, 2, 'real', new E.Generator(1), {
    labels: { init: 'hard', learn: true },
  });
  const p = hard.decode().labels;
  assert.ok(
    Math.abs(p.max().item() - 0.9) < 1e-5,
    'hard labels become logits whose softmax puts 0.9 on the class',
  );
});
