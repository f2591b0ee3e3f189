// DM on a large decoded set: the synthetic pass in one forward with its graph against chunks of
// `synChunk` images (embedded without a graph, then re-run chunk by chunk with the loss's gradient,
// src/distill/methods/dm.ts). The set is LinBa at MNIST IPC 10 (16 bases at half resolution: 470 decoded
// images per class, 4,700 per iteration), real batch 64 per class, DSA, ConvNet-3, the default real
// pass; alternating rounds in one process, median seconds per iteration and the allocator's peak.
//
//   node dist/bench/dmchunk.js [--iterations 3 --rounds 2 --chunk 512]
import * as E from '../src/engine/index.js';
import { loadDataset } from '../src/data/registry.js';
import { contextWithOptimizer } from '../src/distill/method.js';
import { dm } from '../src/distill/methods/dm.js';
import { SyntheticSet } from '../src/distill/synthetic.js';
import { median, numberFlag } from './util.js';

function main(): void {
  const iterations = numberFlag('--iterations', 3);
  const rounds = numberFlag('--rounds', 2);
  const chunk = numberFlag('--chunk', 512);
  const dataset = loadDataset('mnist');
  const gen = new E.Generator(0);
  const synthetic = SyntheticSet.create(dataset, 10, 'real', gen, { parameterization: { kind: 'linba' } });
  const decoded = synthetic.decodedPerClass * dataset.numClasses;
  const opt = new E.SGD(synthetic.learnable, { lr: 1, momentum: 0.5 });
  const ctx = contextWithOptimizer({ dataset, synthetic, gen, model: 'ConvNet' }, opt);
  // One pass: a chunk as large as the set.
  const variants = [
    { name: 'one pass', config: dm.schema.parse({ batchReal: 64, synChunk: decoded }) },
    { name: `chunks of ${chunk}`, config: dm.schema.parse({ batchReal: 64, synChunk: chunk }) },
  ];
  const seconds = variants.map((): number[] => []);
  const peaks = variants.map(() => 0);
  let it = 0;
  for (let round = 0; round < rounds; round++)
    variants.forEach(({ config }, i) => {
      for (let n = 0; n <= iterations; n++) {
        E.resetPeakMemory();
        const t0 = performance.now();
        dm.step(ctx, config, it++);
        // The first iteration of each round warms caches; it is not counted.
        if (n === 0) continue;
        seconds[i].push((performance.now() - t0) / 1000);
        peaks[i] = Math.max(peaks[i], E.allocatorStats().peakInUseBytes);
      }
    });
  console.log(
    `DM iteration on LinBa, MNIST IPC 10 (${decoded} decoded images), real batch 64 per class, DSA, ConvNet-3; median over ${seconds[0].length} iterations`,
  );
  console.log('| synthetic pass | s / iteration | allocator peak | time ratio |');
  console.log('|---|---:|---:|---:|');
  variants.forEach(({ name }, i) => {
    const ratio = (median(seconds[i]) / median(seconds[0])).toFixed(2);
    console.log(
      `| ${name} | ${median(seconds[i]).toFixed(2)} | ${(peaks[i] / 2 ** 30).toFixed(1)} GiB | ${ratio} |`,
    );
  });
}

main();
