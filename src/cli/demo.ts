// `distillery demo`: a short tour of the engine on this machine, the main job
// until the distillation framework lands. It trains a small ConvNet on random
// data, takes a gradient-matching style second-order gradient, and prints the
// allocator statistics.
import * as E from '../engine/index.js';

export interface DemoOptions {
  steps: number;
  seed: number;
  log: (line: string) => void;
}

export function runDemo({ steps, seed, log }: DemoOptions): { firstLoss: number; lastLoss: number } {
  const gen = new E.Generator(seed);
  log(
    `Distillery engine: libtorch ${E.torchVersion()}, ${E.getNumThreads()} threads, CUDA ${E.cudaAvailable() ? 'available' : 'not available'}`,
  );

  const x = E.randn([64, 1, 28, 28], { generator: gen }).keep();
  const y = E.randint(0, 10, [64], { generator: gen }).keep();
  const init = (shape: number[], fanIn: number) =>
    E.rand(shape, { generator: gen })
      .sub(0.5)
      .mul(2 / Math.sqrt(fanIn))
      .keep()
      .requiresGrad_();
  const params = [
    init([16, 1, 3, 3], 9),
    init([16], 9),
    init([10, 16 * 14 * 14], 16 * 14 * 14),
    init([10], 16 * 14 * 14),
  ];
  const forward = (input: E.Tensor) => {
    const h = E.nn.avgPool2d(E.nn.conv2d(input, params[0], params[1], { padding: 1 }).relu(), 2);
    return E.nn.linear(h.flatten(1), params[2], params[3]);
  };
  const opt = new E.SGD(params, { lr: 0.05, momentum: 0.9 });
  let firstLoss = NaN;
  let lastLoss = NaN;
  const t0 = performance.now();
  for (let step = 0; step < steps; step++) {
    lastLoss = E.tidy(() => {
      const loss = E.nn.crossEntropy(forward(x), y);
      opt.step(E.grad(loss, params));
      return loss.item();
    });
    if (step === 0) firstLoss = lastLoss;
  }
  log(
    `Fitting a ConvNet to 64 random images: loss ${firstLoss.toFixed(3)} -> ${lastLoss.toFixed(3)} in ${steps} SGD steps (${((performance.now() - t0) / steps).toFixed(1)} ms/step)`,
  );

  const secondOrder = E.tidy(() => {
    const xs = x.clone().requiresGrad_();
    const g = E.grad(E.nn.crossEntropy(forward(xs), y), params, { createGraph: true });
    const gradNorm = g.map((t) => t.square().sum()).reduce((a, b) => a.add(b));
    const [dx] = E.grad(gradNorm, [xs]);
    return dx.norm().item();
  });
  log(
    `Second order: |d/dx ||dL/dtheta||^2| = ${secondOrder.toExponential(3)} (the gradient-of-gradient path gradient matching uses)`,
  );
  const s = E.allocatorStats();
  log(
    `Allocator: ${s.mode}, ${((s.cacheHits / Math.max(1, s.allocations)) * 100).toFixed(1)}% of ${s.allocations} allocations served from cache`,
  );
  for (const t of [x, y, ...params]) t.dispose();
  opt.disposeState();
  return { firstLoss, lastLoss };
}
