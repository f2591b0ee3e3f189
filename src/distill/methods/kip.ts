// KIP, Kernel Inducing Points (Nguyen, Chen, Lee 2021; reference google-research kip/KIP.ipynb):
// performance matching with a closed-form inner loop. Each iteration draws a class-balanced batch of
// real targets and fits kernel ridge regression from the synthetic support set to it:
//   L = 0.5 mean((K_ts (K_ss + |reg| tr(K_ss)/n_s I)^-1 Y_s - Y_t)^2)
// with K an infinite-width network's NTK (default: the reference's one-hidden-layer FC NTK, W_std
// sqrt 2, b_std 0.1) and Y centred one-hot vectors (one-hot - 1/C). Labels are fixed by default, as in
// the reference (LEARN_LABELS = False); with labels.learn they are learned as regression targets in
// the optimizer's labels group. Adam lr 0.04 on the images (the reference's LEARNING_RATE, labels
// share it). Kernels and the solve run in float64 (the reference enables jax x64; see kernels/krr.ts).
// First order: no network is trained, the loss differentiates through the kernel into the images.
// KIP's Label Solve (the paper's Algorithm 2, `labelSolve`): once, before the first iteration, the
// learned targets are set to the least-squares optimum for the initial images against a class-balanced
// real batch; with iterations 0 that is the paper's LS alone, otherwise KIP continues from it.
import { z } from 'zod';
import * as E from '../../engine/index.js';
import type { Dataset } from '../../data/dataset.js';
import {
  centredOneHot,
  kernelMatrix,
  krrAccuracy,
  krrMseLoss,
  labelSolve,
  type KernelSpec,
} from '../../kernels/index.js';
import type { Method, MethodContext, StepResult } from '../method.js';
import { registerMethod } from '../registry.js';
import type { SyntheticSet } from '../synthetic.js';

const kernelSchema = z
  .object({
    arch: z
      .enum(['fc', 'conv'])
      .default('fc')
      .describe(
        "'fc' (Flatten, Dense layers) or 'conv' (3x3 SAME convolutions, flatten readout; see kernels/ntk.ts).",
      ),
    depth: z.number().int().min(0).default(1),
    wStd: z.number().positive().default(Math.SQRT2),
    bStd: z.number().nonnegative().default(0.1),
    type: z.enum(['ntk', 'nngp']).default('ntk'),
  })
  .strict()
  .default({});

const schema = z
  .object({
    kernel: kernelSchema.describe(
      'The kernel: { arch: fc | conv, depth, wStd, bStd, type: ntk | nngp } (kernels/ntk.ts).',
    ),
    reg: z
      .number()
      .nonnegative()
      .default(1e-6)
      .describe(
        "Ridge relative to the mean diagonal of K_ss: lambda = reg tr(K_ss) / n_s (the reference's 1e-6).",
      ),
    batchReal: z
      .number()
      .int()
      .positive()
      .default(500)
      .describe(
        "Real target images per class per iteration (the reference: 5000 in all, class-balanced). The conv kernel's memory is n_t x n_s x pixels per layer, so its presets use far fewer.",
      ),
    kernelDtype: z
      .enum(['float64', 'float32'])
      .default('float64')
      .describe('Arithmetic of the kernel (the solve is always float64).'),
    labelSolve: z
      .number()
      .int()
      .nonnegative()
      .default(0)
      .describe(
        "KIP's Label Solve before the first iteration: real targets per class it fits the learned targets to (0: off; needs labels.learn, and at least as many targets as synthetic images; iterations 0 gives the paper's LS alone).",
      ),
    evalChunk: z
      .number()
      .int()
      .positive()
      .default(500)
      .describe('Test images per kernel block in the KRR evaluation (memory bound).'),
  })
  .strict();

export type KIPConfig = z.infer<typeof schema>;

function spec(config: KIPConfig): KernelSpec {
  return { ...config.kernel };
}

/** The support labels as regression targets: learned targets, or centred one-hot of the hard labels. */
function supportTargets(synthetic: SyntheticSet, labels: E.Tensor, dtype: E.DType): E.Tensor {
  return synthetic.labelForm === 'targets'
    ? labels.to(dtype)
    : centredOneHot(labels, synthetic.numClasses, dtype);
}

/** KIP's loss for a support set against a real target batch, differentiable in xs and ys. */
export function kipLoss(config: KIPConfig, xs: E.Tensor, ys: E.Tensor, xt: E.Tensor, yt: E.Tensor): E.Tensor {
  const s = spec(config);
  const a = xs.to(config.kernelDtype);
  const b = E.noGrad(() => xt.to(config.kernelDtype));
  return krrMseLoss(kernelMatrix(s, b, a), kernelMatrix(s, a, a), ys, yt, config.reg);
}

/**
 * Replaces the set's learned targets by KIP's label solve against `config.labelSolve` real images per
 * class (drawn from `gen`): the targets that minimise the KRR fit's squared error for the current images.
 */
export function solveLabels(
  dataset: Dataset,
  synthetic: SyntheticSet,
  gen: E.Generator,
  config: KIPConfig,
): void {
  if (synthetic.labelForm !== 'targets')
    throw new Error(
      'kip: methodConfig.labelSolve sets learned regression targets; set labels.learn true (iterations 0 keeps the solved targets as they are)',
    );
  const perClass = Math.min(config.labelSolve, dataset.smallestClassSize);
  const rows = synthetic.labels.size(0);
  if (perClass * dataset.numClasses < rows)
    throw new Error(
      `kip: methodConfig.labelSolve ${config.labelSolve} per class gives ${perClass * dataset.numClasses} targets for ${rows} synthetic images; the label solve needs at least as many (raise it to ${Math.ceil(rows / dataset.numClasses)})`,
    );
  const solved = E.tidy(() => {
    const real = dataset.gather(dataset.sampleIndices(perClass, gen));
    const s = spec(config);
    const xs = synthetic.decode().images.detach().to(config.kernelDtype);
    const xt = real.images.to(config.kernelDtype);
    const yt = centredOneHot(real.labels, dataset.numClasses, 'float64');
    return labelSolve(kernelMatrix(s, xt, xs), kernelMatrix(s, xs, xs), yt, config.reg).to(
      synthetic.labels.dtype,
    );
  });
  synthetic.setLabels(solved.keep(), 'targets');
}

export const kip: Method<KIPConfig> = registerMethod({
  name: 'kip',
  family: 'performance matching',
  subFamily: 'kernel ridge regression',
  summary:
    'fit kernel ridge regression with an infinite-width NTK from the synthetic set to real batches (Nguyen et al. 2021)',
  needs: 'a dataset; no training of networks',
  schema: schema as z.ZodType<KIPConfig>,
  defaults: {
    init: 'real',
    iterations: 1000,
    optimizer: { kind: 'adam', lr: 0.04 },
    optimizers: { labels: { kind: 'adam', lr: 0.04 } },
  },
  labelGradients: true,
  labelSpace: 'targets',

  init({ dataset, synthetic, gen }: MethodContext, config: KIPConfig): void {
    if (config.labelSolve > 0) solveLabels(dataset, synthetic, gen, config);
  },

  step({ dataset, synthetic, gen, update }: MethodContext, config: KIPConfig): StepResult {
    return E.tidy(() => {
      const k = dataset.numClasses;
      const real = dataset.gather(
        dataset.sampleIndices(Math.min(config.batchReal, dataset.smallestClassSize), gen),
      );
      const { images, labels } = synthetic.decode();
      const ys = supportTargets(synthetic, labels, 'float64');
      const yt = centredOneHot(real.labels, k, 'float64');
      const loss = kipLoss(config, images, ys, real.images, yt);
      const value = loss.item();
      update(E.grad(loss, synthetic.learnable, { allowUnused: true }), value);
      return { loss: value };
    });
  },

  ownEvaluation(synthetic: SyntheticSet, dataset: Dataset, config: KIPConfig) {
    const s = spec(config);
    const accuracy = E.tidy(() => {
      const { images, labels } = synthetic.decode();
      const ys = supportTargets(synthetic, labels.detach(), 'float64');
      const kernel = (a: E.Tensor, b: E.Tensor) =>
        kernelMatrix(s, a.to(config.kernelDtype), b.to(config.kernelDtype));
      return krrAccuracy(kernel, images.detach(), ys, dataset.test, config.reg, config.evalChunk);
    });
    return { name: `KRR with the ${s.arch} ${s.type.toUpperCase()} (depth ${s.depth})`, accuracy };
  },
});
