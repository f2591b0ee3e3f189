import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import * as E from '../../src/engine/index.js';
import { pythonWithNumpy } from '../helpers.js';
import { loadArtifact, saveArtifact } from '../../src/artifact/artifact.js';
import { loadDataset } from '../../src/data/registry.js';
import { Preprocessing } from '../../src/data/preprocess.js';
import { tempDir, writeIdxDataset } from '../fixtures.js';

const dataDir = tempDir('art-data');
writeIdxDataset(dataDir, { perClass: 3 });
const ds = loadDataset('mnist', { dataDir });

function sample(ipc: number) {
  return ds.gather(ds.sampleIndices(ipc, new E.Generator(0)));
}

test('save and load round trip, with a grid of one row per class', () => {
  const dir = join(tempDir('art'), 'set');
  const { images, labels } = sample(2);
  const meta = saveArtifact(dir, ds, images, labels, {
    method: 'test',
    config: { a: 1 },
    seed: 7,
    model: 'ConvNet',
    lr: 0.05,
  });
  assert.equal(meta.ipc, 2);
  const art = loadArtifact(dir, ds);
  assert.deepEqual(art.images.toNumbers(), images.toNumbers());
  assert.deepEqual(art.labels.toNumbers(), labels.toNumbers());
  assert.ok(Math.abs((art.lr as number) - 0.05) < 1e-7);
  assert.deepEqual(art.meta.preprocessing, { mean: [0.1307], std: [0.3081], zca: null });
  assert.equal(art.meta.seed, 7);
  assert.ok(art.meta.versions.libtorch.length > 0);
  const png = PNG.sync.read(readFileSync(join(dir, 'grid.png')));
  // 28 px images upscaled x2 to 56 px tiles (2 px gaps), after a margin holding the class index (one digit).
  const margin = 8 + 4;
  assert.deepEqual([png.width, png.height], [margin + 2 * 58 + 2, 10 * 58 + 2]);
  // Row 0's label: the glyph '0' has its top-left pixel set (black) beside the first tile.
  const top = 2 + Math.floor((56 - 10) / 2);
  assert.equal(png.data[(top * png.width + 2) * 4], 0, 'the class index is drawn at the left');
  assert.equal(png.data[(1 * png.width + 1) * 4], 255, 'the margin is white elsewhere');
});

test('mismatched dataset or preprocessing is rejected with what to do', () => {
  const dir = join(tempDir('art'), 'set');
  const { images, labels } = sample(1);
  saveArtifact(dir, ds, images, labels, { method: 'test', config: {}, seed: 0, model: 'ConvNet' });
  const other = loadDataset('mnist', { dataDir, preprocessing: new Preprocessing([0.5], [0.5]) });
  assert.throws(
    () => loadArtifact(dir, other),
    /was made with preprocessing mean \[0\.1307\], std \[0\.3081\], but the dataset is loaded with mean \[0\.5000\]/,
  );
  const meta = JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8'));
  writeFileSync(
    join(dir, 'meta.json'),
    JSON.stringify({ ...meta, dataset: { ...meta.dataset, name: 'fashion-mnist' } }),
  );
  assert.throws(() => loadArtifact(dir, ds), /was distilled from 'fashion-mnist', not 'mnist'/);
  writeFileSync(join(dir, 'meta.json'), JSON.stringify({ ...meta, decodedPerClass: 5 }));
  assert.throws(() => loadArtifact(dir), /images have shape \[10, 1, 28, 28\], meta\.json says 5 per class/);
  // A version 1 meta.json (no decodedPerClass): the images are ipc per class.
  writeFileSync(join(dir, 'meta.json'), JSON.stringify({ ...meta, decodedPerClass: undefined, ipc: 5 }));
  assert.throws(() => loadArtifact(dir), /images have shape \[10, 1, 28, 28\], meta\.json says 5 per class/);
  writeFileSync(join(dir, 'meta.json'), '{not json');
  assert.throws(() => loadArtifact(dir), /meta\.json is not JSON/);
  assert.throws(() => loadArtifact(tempDir('none')), /meta\.json is missing/);
});

test('ZCA preprocessing travels inside the artifact and inverts', () => {
  const zca = loadDataset('mnist', { dataDir, zca: 0.1 });
  const dir = join(tempDir('art'), 'zca');
  const sub = zca.gather(zca.sampleIndices(1, new E.Generator(1)));
  saveArtifact(dir, zca, sub.images, sub.labels, { method: 'test', config: {}, seed: 0, model: 'ConvNet' });
  const art = loadArtifact(dir, zca);
  assert.equal(art.preprocessing.zca?.eps, 0.1);
  assert.ok(art.preprocessing.equals(zca.preprocessing));
  const raw = E.rand([2, 1, 28, 28], { generator: new E.Generator(3) });
  const back = art.preprocessing.invert(art.preprocessing.apply(raw));
  assert.ok(back.sub(raw).abs().max().item() < 1e-3);
});

test('PyTorch/NumPy users can load an artifact without Distillery (skipped without python3 + numpy)', (t) => {
  const python = pythonWithNumpy();
  if (!python) {
    t.skip('no python3 with numpy on this machine');
    return;
  }
  const dir = join(tempDir('art'), 'py');
  const { images, labels } = sample(2);
  saveArtifact(dir, ds, images, labels, { method: 'test', config: {}, seed: 0, model: 'ConvNet' });
  const script = `
import json, struct, sys, numpy as np
d = sys.argv[1]
meta = json.load(open(d + '/meta.json'))
raw = open(d + '/synthetic.safetensors', 'rb').read()
n = struct.unpack('<Q', raw[:8])[0]
h = json.loads(raw[8:8 + n])
def arr(name, dt):
    a, b = h[name]['data_offsets']
    return np.frombuffer(raw[8 + n + a:8 + n + b], dtype=dt).reshape(h[name]['shape'])
x = arr('images', np.float32)
y = arr('labels', np.int64)
pixels = x * np.array(meta['preprocessing']['std']).reshape(1, -1, 1, 1) + np.array(meta['preprocessing']['mean']).reshape(1, -1, 1, 1)
print(json.dumps({'shape': list(x.shape), 'labels': y.tolist(), 'min': float(pixels.min()), 'max': float(pixels.max())}))
`;
  const out = JSON.parse(execFileSync(python, ['-c', script, dir], { encoding: 'utf8' }));
  assert.deepEqual(out.shape, [20, 1, 28, 28]);
  assert.deepEqual(out.labels, labels.toNumbers());
  assert.ok(out.min > -1e-5 && out.max < 1 + 1e-5, 'de-normalised pixels are back in [0, 1]');
  assert.ok(existsSync(join(dir, 'grid.png')));
});
