import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import * as E from '../../src/engine/index.js';
import { tempDir } from '../fixtures.js';

test('tidy disposes temporaries, returns survivors to the enclosing scope, and frees on throw', () => {
  let inner: E.Tensor | null = null;
  let kept: E.Tensor | null = null;
  const result = E.tidy(() => {
    inner = E.ones([4]).add(1);
    kept = E.ones([2]).keep();
    const nested = E.tidy(() => {
      const t = E.zeros([3]);
      return { t, list: [t.add(1)] };
    });
    return { a: inner.mul(2), nested };
  });
  assert.equal((inner as unknown as E.Tensor).isDisposed, true);
  assert.equal((kept as unknown as E.Tensor).isDisposed, false);
  assert.deepEqual(result.a.toList(), [4, 4, 4, 4]);
  assert.deepEqual(result.nested.list[0].toList(), [1, 1, 1]);
  let leaked: E.Tensor | null = null;
  assert.throws(() =>
    E.tidy(() => {
      leaked = E.ones([2]);
      throw new Error('inside');
    }),
  );
  assert.equal((leaked as unknown as E.Tensor).isDisposed, true);
  assert.throws(
    () => E.tidy(() => Promise.resolve(1) as unknown as number),
    /tidy\(\) cannot wrap an async function/,
  );
});

test('only tensors that outlive their scope are reported to V8 as external memory', () => {
  const base = E.unscopedTensorBytes();
  E.tidy(() => {
    E.zeros([10, 1024, 1024]); // 40 MB released by the scope: no GC pressure
    assert.ok(E.unscopedTensorBytes() - base < 1e6);
  });
  const kept = E.tidy(() => E.zeros([10, 1024, 1024]));
  const unscoped = E.zeros([10, 1024, 1024]);
  assert.ok(E.unscopedTensorBytes() - base >= 2 * 40 * 2 ** 20, 'survivors and unscoped tensors are counted');
  kept.dispose();
  unscoped.dispose();
  assert.ok(E.unscopedTensorBytes() - base < 1e6, 'dispose gives the count back');
});

test('using a disposed tensor is an error, dispose is idempotent', () => {
  const t = E.ones([2]);
  t.dispose();
  t.dispose();
  assert.throws(() => t.add(1), /this tensor was disposed/);
  assert.equal(t.toString(), 'Tensor(disposed)');
});

test('the caching allocator serves repeated shapes from its cache and can be emptied', () => {
  E.tidy(() => {
    for (let i = 0; i < 10; i++) E.ones([256, 1024]).mul(2);
  });
  const before = E.allocatorStats();
  E.tidy(() => {
    for (let i = 0; i < 10; i++) E.ones([256, 1024]).mul(2);
  });
  const after = E.allocatorStats();
  assert.equal(after.mode, 'caching');
  const allocations = after.allocations - before.allocations;
  assert.ok(allocations >= 20, `${allocations} allocations for 20 tensors`);
  assert.equal(
    after.cacheHits - before.cacheHits,
    allocations,
    'every allocation of a seen size is a cache hit',
  );
  assert.ok(after.cachedBytes >= 2 * 256 * 1024 * 4);
  E.emptyCache();
  assert.equal(E.allocatorStats().cachedBytes, 0);
});

test('leak test: 5,000 training steps of a small ConvNet hold RSS within +100 MB of step 100', () => {
  const gen = new E.Generator(0);
  const x = E.randn([16, 1, 16, 16], { generator: gen });
  const y = E.randint(0, 10, [16], { generator: gen });
  const params = [
    E.randn([8, 1, 3, 3], { generator: gen }).mul(0.3),
    E.zeros([8]),
    E.ones([8]),
    E.zeros([8]),
    E.randn([10, 8 * 8 * 8], { generator: gen }).mul(0.05),
    E.zeros([10]),
  ].map((p) => p.requiresGrad_());
  const opt = new E.SGD(params, { lr: 0.01, momentum: 0.9, weightDecay: 5e-4 });
  let rssAt100 = 0;
  let inUseAt100 = 0;
  for (let step = 0; step < 5000; step++) {
    E.tidy(() => {
      const h = E.nn.conv2d(x, params[0], params[1], { padding: 1 });
      const n = E.nn.groupNorm(h, 8, { weight: params[2], bias: params[3] });
      const logits = E.nn.linear(E.nn.avgPool2d(n.relu(), 2).flatten(1), params[4], params[5]);
      opt.step(E.grad(E.nn.crossEntropy(logits, y), params));
    });
    if (step === 100) {
      rssAt100 = process.memoryUsage().rss;
      inUseAt100 = E.allocatorStats().inUseBytes;
    }
  }
  const growth = (process.memoryUsage().rss - rssAt100) / 2 ** 20;
  assert.ok(growth < 100, `RSS grew by ${growth.toFixed(1)} MB between step 100 and 5000`);
  // Bytes held by live tensors must not grow at all (cached blocks are not leaks).
  assert.equal(E.allocatorStats().inUseBytes, inUseAt100);
});

test("the allocator's default cache cap is half the memory a cgroup allows (v2 memory.max, v1 limit), or of RAM", () => {
  const ENGINE = fileURLToPath(new URL('../../src/engine/index.js', import.meta.url));
  const probe = `const E = await import(${JSON.stringify(ENGINE)}); console.log(E.allocatorStats().cacheLimitBytes);`;
  const limitWith = (files: Record<string, string>, self = '0::/\n') => {
    const root = tempDir('cgroup');
    for (const [path, value] of Object.entries(files)) {
      mkdirSync(join(root, path, '..'), { recursive: true });
      writeFileSync(join(root, path), `${value}\n`);
    }
    const proc = join(tempDir('cgroup-proc'), 'cgroup');
    writeFileSync(proc, self);
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', probe], {
      encoding: 'utf8',
      env: { ...process.env, DISTILLERY_CGROUP_ROOT: root, DISTILLERY_CGROUP_PROC: proc },
    });
    assert.equal(r.status, 0, r.stderr);
    return Number(r.stdout.trim());
  };
  const gib = 1024 ** 3;
  assert.equal(limitWith({ 'memory.max': String(gib) }), gib / 2, 'cgroup v2');
  assert.equal(limitWith({ 'memory/memory.limit_in_bytes': String(2 * gib) }), gib, 'cgroup v1');
  assert.equal(limitWith({ 'memory.max': 'max' }), Math.floor(totalmem() / 2), 'no cap: half of RAM');
  assert.equal(limitWith({}), Math.floor(totalmem() / 2), 'no cgroup files');
  // A host process in a slice: its own cgroup's limit, or an ancestor's, from /proc/self/cgroup.
  const slice = 'system.slice/job.service';
  assert.equal(limitWith({ [`${slice}/memory.max`]: String(gib) }, `0::/${slice}\n`), gib / 2, 'v2 own');
  assert.equal(
    limitWith(
      { 'system.slice/memory.max': String(2 * gib), [`${slice}/memory.max`]: 'max' },
      `0::/${slice}\n`,
    ),
    gib,
    'v2 ancestor',
  );
  assert.equal(
    limitWith(
      { [`memory/${slice}/memory.limit_in_bytes`]: String(gib) },
      `5:cpu,memory:/${slice}\n1:name=systemd:/x\n`,
    ),
    gib / 2,
    'v1 with shared controllers',
  );
  assert.equal(
    limitWith({ [`${slice}/memory.max`]: String(gib) }, `5:cpu:/${slice}\n`),
    Math.floor(totalmem() / 2),
    'a v1 line of another controller names no memory limit',
  );
});

test('worker threads load the addon and allocate concurrently: one allocator, consistent counters', async () => {
  const ENGINE = fileURLToPath(new URL('../../src/engine/index.js', import.meta.url));
  const body = `(async () => {
    const E = await import(${JSON.stringify(`file://${ENGINE}`)});
    for (let i = 0; i < 300; i++) E.tidy(() => E.randn([64, 256]).matmul(E.randn([256, 64])).sum().item());
    const kept = E.ones([1000]).keep();
    kept.dispose();
  })().catch((e) => { console.error(e); process.exit(3); });`;
  const before = E.allocatorStats();
  const workers = Array.from({ length: 4 }, () => new Worker(body, { eval: true }));
  await Promise.all(
    workers.map(
      (w) =>
        new Promise<void>((resolve, reject) => {
          w.on('error', reject);
          w.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`worker exit ${code}`))));
        }),
    ),
  );
  const after = E.allocatorStats();
  // The workers allocated through the one process allocator and gave every block back (this thread
  // allocated nothing meanwhile; a collection of its own garbage can only lower the count).
  assert.ok(
    after.allocations - before.allocations >= 4 * 300 * 3,
    `${after.allocations - before.allocations} allocations`,
  );
  assert.ok(after.inUseBytes <= before.inUseBytes, `in use ${before.inUseBytes} -> ${after.inUseBytes}`);
  assert.equal(after.mode, 'caching');
});

test('a synchronous library loop as the README writes it stays flat; one outside tidy() is warned about once', () => {
  const engine = new URL('../../src/engine/index.js', import.meta.url).href;
  const script = `
    import * as E from '${engine}';
    const gen = new E.Generator(0);
    const w = E.randn([10, 784], { generator: gen }).requiresGrad_();
    const x = E.randn([32, 784], { generator: gen });
    const y = E.randint(0, 10, [32], { generator: gen });
    const step = () => E.tidy(() => {
      const [g] = E.grad(E.nn.crossEntropy(E.nn.linear(x, w), y), [w]);
      w.detach().sub_(g.mul(0.01));
      return g.square().sum().item();
    });
    for (let i = 0; i < 200; i++) step();
    const before = E.allocatorStats().inUseBytes;
    for (let i = 0; i < 5000; i++) step();
    const after = E.allocatorStats().inUseBytes;
    const warnings = [];
    process.on('warning', (w) => warnings.push(w.code));
    for (let i = 0; i < 25000; i++) E.ones([1]).add(1);
    await new Promise((r) => setImmediate(r));
    console.log(JSON.stringify({ before, after, warnings }));
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const { before, after, warnings } = JSON.parse(r.stdout.trim().split('\n').pop() as string);
  assert.ok(after - before <= 64 * 1024, `allocator bytes in use grew by ${after - before} over 5,000 steps`);
  assert.deepEqual(warnings, ['DISTILLERY_UNSCOPED_TENSORS']);
  assert.match(r.stderr, /outside tidy\(\) without the event loop running/);
});
