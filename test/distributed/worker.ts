// A rank for the distributed tests, started by them with DISTILLERY_DIST_WORKER=<scenario> and
// torchrun's variables; inert when the test runner loads it as a file of its own.
import * as E from '../../src/engine/index.js';

const scenario = process.env.DISTILLERY_DIST_WORKER;

function main(): void {
  const timeoutMs = Number(process.env.DISTILLERY_DIST_TIMEOUT_MS ?? 20000);
  const g = E.ProcessGroup.fromEnv(process.env, { timeoutMs });
  const out: Record<string, unknown> = { rank: g.rank, worldSize: g.worldSize };
  if (scenario === 'collectives') {
    const t = E.tensor([g.rank + 1, 10 * (g.rank + 1)], { dtype: 'float64' });
    g.allReduce([t]);
    out.sum = t.toNumbers();
    const m = E.tensor([g.rank * 5 - 2]);
    g.allReduce([m], 'max');
    out.max = m.toNumbers();
    const b = E.tensor([g.rank === 1 ? 42 : 0, 7]);
    g.broadcast([b], 1);
    out.broadcast = b.toNumbers();
    out.gathered = g.allGather(E.tensor([g.rank, g.rank * g.rank])).map((x) => x.toNumbers());
    if (g.rank === 0) g.setValue('greeting', 'hello from 0');
    out.value = g.getValue('greeting');
    g.barrier();
  } else if (scenario === 'peer-dies') {
    const t = E.tensor([1]);
    g.allReduce([t]);
    if (g.rank === 1) process.exit(7);
    const t0 = performance.now();
    try {
      g.barrier();
      g.allReduce([t]);
      out.error = null;
    } catch (e) {
      out.error = (e as Error).message;
      out.name = (e as Error).name;
    }
    out.seconds = (performance.now() - t0) / 1000;
  } else if (scenario === 'mismatch') {
    // The ranks disagree on the collective (a bug in a caller): both must fail within the timeout.
    const t0 = performance.now();
    try {
      if (g.rank === 0) g.allReduce([E.tensor([1])]);
      else g.barrier();
      out.error = null;
    } catch (e) {
      out.error = (e as Error).message;
    }
    out.seconds = (performance.now() - t0) / 1000;
  } else if (scenario === 'peer-silent') {
    // Rank 1 stays alive but never joins the collective: rank 0 must time out, not hang.
    if (g.rank === 1) {
      const until = Date.now() + timeoutMs * 3;
      while (Date.now() < until) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
      process.exit(0);
    }
    const t0 = performance.now();
    try {
      g.allReduce([E.tensor([1])]);
      out.error = null;
    } catch (e) {
      out.error = (e as Error).message;
    }
    out.seconds = (performance.now() - t0) / 1000;
  }
  process.stdout.write(`${JSON.stringify(out)}\n`);
  g.close();
}

if (scenario) main();
