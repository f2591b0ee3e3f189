// Distribution matching (DM, Zhao & Bilen 2023; reference main_DM.py): each
// iteration a fresh randomly initialised network that is never trained; match
// the per-class mean embedding of real and synthetic images, with one Siamese
// DSA draw per class shared by both sides:
//   L = sum_c || mean_j f(A_c(x_real_c,j)) - mean_j f(A_c(x_syn_c,j)) ||^2
// First order only. All classes' real batches go through the network together
// (in chunks, under no-grad); the synthetic images in one forward with grad, or, when
// there are more than synChunk of them (a decoder such as LinBa's makes thousands), in
// chunks: embedded once without a graph, the loss differentiated with respect to those
// embeddings, then each chunk re-embedded with its graph and pulled back with its share
// of that gradient, so at most one chunk's graph is alive (the same gradient, one more
// forward pass; batch-norm networks, whose statistics span the batch, are never chunked).
// The default (2,048 per rank) keeps every pixel set up to CIFAR-100 at IPC 20 on the one-pass
// path: where both fit, chunking costs 14 % more time (docs/benchmarks.md, bench/dmchunk.ts).
// The real pass needs no gradient, so it may run in bfloat16 and channels-last
// layout (realDtype): where the CPU has native bfloat16 that pass takes about
// two thirds of float32's time, and its per-class means differ by well under
// the matching loss's scale (see docs/benchmarks.md, DM speed).
import { z } from 'zod';
import * as E from '../../engine/index.js';
import { DSA, type SegmentParams, methodDsa } from '../../augment/index.js';
import { castInput, castState, createNetwork, type NetState, type Network } from '../../models/index.js';
import type { Method, MethodContext, StepResult } from '../method.js';
import { registerMethod } from '../registry.js';
import { myClasses, reduceGradients, refuseBatchNorm, sharedWorld } from '../dataparallel.js';
import { precisionOption, type RealDtype } from '../precision.js';

/** DM's settings; M3D extends them (same sampling, another discrepancy). */
export const dmSchema = z
  .object({
    batchReal: z.number().int().positive().default(256).describe('Real images per class per iteration.'),
    dsa: z.boolean().default(true).describe('Siamese DSA on both sides.'),
    dsaStrategy: z
      .string()
      .optional()
      .describe("DSA strategy; default: the dataset's (no flips for digits)."),
    realChunk: z
      .number()
      .int()
      .positive()
      .default(640)
      .describe('Real images per no-grad forward (bounds the working set; BN models use one batch).'),
    synChunk: z
      .number()
      .int()
      .positive()
      .default(2048)
      .describe(
        'Synthetic (decoded) images per forward with a graph, per rank: more are embedded in chunks and re-run (BN models use one batch).',
      ),
    realDtype: precisionOption('auto').describe(
      'Precision of the no-grad real pass (see precision.ts); bfloat16 runs it channels-last.',
    ),
  })
  .strict();

export type DMConfig = z.infer<typeof dmSchema>;

/** embed(x) as [classes, perClass, D], `chunk` images per forward (a bounded working set). */
function classEmbeddings(
  embed: (x: E.Tensor) => E.Tensor,
  x: E.Tensor,
  classes: number,
  perClass: number,
  chunk: number,
): E.Tensor {
  const n = x.size(0);
  if (chunk >= n) return embed(x).reshape(classes, perClass, -1);
  const parts: E.Tensor[] = [];
  for (let start = 0; start < n; start += chunk)
    parts.push(E.tidy(() => embed(x.narrow(0, start, Math.min(chunk, n - start)))));
  const all = E.cat(parts, 0);
  for (const p of parts) p.dispose();
  return all.reshape(classes, perClass, -1);
}

/** The state's values rounded to `dtype`, kept in their own dtype; disposes the input. */
function roundedState(state: NetState, dtype: E.DType): NetState {
  const round = (entries: Map<string, E.Tensor>) =>
    new Map(
      [...entries].map(([k, t]) => {
        const r = E.tidy(() => t.to(dtype).to(t.dtype));
        t.dispose();
        return [k, r];
      }),
    );
  return { params: round(state.params), buffers: round(state.buffers) };
}

/** embed() in `dtype` and channels-last layout (weights and inputs), returning float32 features. */
function lowPrecisionEmbed(net: Network, state: NetState, dtype: E.DType): (x: E.Tensor) => E.Tensor {
  const low = castState(state, dtype);
  return (x) => net.embed(low, castInput(x, dtype), { train: true }).float();
}

export interface DMProblem {
  net: Network;
  state: NetState;
  classes: number;
  /** Real images, `perClass` of each class in class order. */
  real: E.Tensor;
  perClass: number;
  /** Synthetic images (differentiable), `ipc` of each class in class order. */
  syn: E.Tensor;
  ipc: number;
  /** One Siamese DSA draw per class (shared by its real and synthetic images), or null. */
  draws: SegmentParams[] | null;
  dsa: DSA | null;
  /** Precision of the no-grad real pass (see the top of this file). */
  realDtype: RealDtype;
  /** Real images per no-grad forward (batch-norm networks take all classes in one batch). */
  realChunk: number;
}

/** A discrepancy between matched embeddings, real [classes, perClass, D] and synthetic [classes, ipc, D]. */
export type Discrepancy = (real: E.Tensor, syn: E.Tensor) => E.Tensor;

/** DM's: sum_c || mean_j real_c,j - mean_j syn_c,j ||^2. */
export const meanDiscrepancy: Discrepancy = (real, syn) => real.mean(1).sub(syn.mean(1)).square().sum();

const sizes = (classes: number, n: number) => new Array<number>(classes).fill(n);

/** The problem's network as a function of images, at their own precision, in training mode. */
const embedder = (p: DMProblem) => (x: E.Tensor) => p.net.embed(p.state, x, { train: true });

/** The real side's embeddings [classes, perClass, D], without gradient, under each class's DSA draw. */
function realEmbeddings(p: DMProblem): E.Tensor {
  const realAug = p.draws && p.dsa ? p.dsa.apply(p.real, p.draws, sizes(p.classes, p.perClass)) : p.real;
  return E.noGrad(() => {
    const embedReal =
      p.realDtype === 'bfloat16' ? lowPrecisionEmbed(p.net, p.state, 'bfloat16') : embedder(p);
    const chunk = p.net.hasBatchNorm ? Infinity : p.realChunk;
    return classEmbeddings(embedReal, realAug, p.classes, p.perClass, chunk);
  });
}

/** The synthetic images under each class's DSA draw (differentiable in syn). */
function augmentedSyn(p: DMProblem): E.Tensor {
  return p.draws && p.dsa ? p.dsa.apply(p.syn, p.draws, sizes(p.classes, p.ipc)) : p.syn;
}

/**
 * The embeddings DM matches: real [classes, perClass, D] (no gradient) and synthetic [classes, ipc, D]
 * (differentiable in syn), each class's real and synthetic images under the same DSA draw.
 */
export function matchedEmbeddings(p: DMProblem): { real: E.Tensor; syn: E.Tensor } {
  const real = realEmbeddings(p);
  return { real, syn: embedder(p)(augmentedSyn(p)).reshape(p.classes, p.ipc, -1) };
}

/** sum_c || mean f(A_c(real_c)) - mean f(A_c(syn_c)) ||^2, differentiable in syn. */
export function distributionMatchingLoss(p: DMProblem): E.Tensor {
  const { real, syn } = matchedEmbeddings(p);
  return meanDiscrepancy(real, syn);
}

/**
 * The value of discrepancy(matchedEmbeddings(p)) and its gradient with respect to p.syn, the synthetic
 * side embedded `chunk` images at a time: once without a graph for the loss and d loss / d embeddings,
 * then chunk by chunk again with a graph, each pulled back with its rows of that gradient. Equal to
 * differentiating the one-pass loss (up to float summation order) while only one chunk's graph is alive.
 *
 * @example const { value, synGrad } = chunkedMatching(problem, meanDiscrepancy, 512)
 */
export function chunkedMatching(
  p: DMProblem,
  discrepancy: Discrepancy,
  chunk: number,
): { value: E.Tensor; synGrad: E.Tensor } {
  // Batch-norm statistics span the batch: embedding a chunk alone would change every embedding.
  if (p.net.hasBatchNorm) throw new Error('chunkedMatching: a batch-norm network cannot embed in chunks');
  return E.tidy(() => {
    const synAug = augmentedSyn(p);
    const x = synAug.detach();
    const embed = embedder(p);
    const emb = E.noGrad(() => classEmbeddings(embed, x, p.classes, p.ipc, chunk)).requiresGrad_();
    const value = discrepancy(realEmbeddings(p), emb);
    const embGrad = E.grad(value, [emb])[0].reshape(x.size(0), -1);
    const parts: E.Tensor[] = [];
    for (let start = 0; start < x.size(0); start += chunk) {
      const n = Math.min(chunk, x.size(0) - start);
      parts.push(
        E.tidy(() => {
          const xi = x.narrow(0, start, n).detach().requiresGrad_();
          return E.grad(embed(xi), [xi], { gradOutputs: [embGrad.narrow(0, start, n)] })[0];
        }),
      );
    }
    const xGrad = E.cat(parts, 0);
    for (const t of parts) t.dispose();
    const synGrad = synAug === p.syn ? xGrad : E.grad(synAug, [p.syn], { gradOutputs: [xGrad] })[0];
    return { value: value.detach(), synGrad };
  });
}

/** The loss and the set's gradients; past `synChunk` decoded images (no batch norm) the synthetic pass is chunked. */
function lossAndGradients(
  p: DMProblem,
  discrepancy: Discrepancy,
  synChunk: number,
  synthetic: MethodContext['synthetic'],
  decoded: { images: E.Tensor; labels: E.Tensor },
): { value: E.Tensor; grads: (E.Tensor | null)[] } {
  const chunk = p.net.hasBatchNorm ? Infinity : synChunk;
  if (p.syn.size(0) > chunk) {
    const { value, synGrad } = chunkedMatching(p, discrepancy, chunk);
    return { value, grads: synthetic.pullBack({ ...decoded, images: p.syn }, synGrad) };
  }
  const { real, syn } = matchedEmbeddings(p);
  const value = discrepancy(real, syn);
  return { value, grads: E.grad(value, synthetic.learnable, { allowUnused: true }) };
}

/**
 * One DM-style iteration: a fresh random network, a real batch per class, one DSA draw per class, and
 * `discrepancy` (DM's mean matching or another) of their embeddings differentiated into the set.
 * Data parallel (`ctx.world` of several ranks): every rank draws the same network, batch indices and
 * augmentation (the same stream), computes the loss of its classes only (class c on rank c mod size:
 * the real pass, the expensive side, is split), and the gradients and losses are summed over ranks: the
 * per-class sum of the single process, up to float summation order.
 */
export function embeddingMatchingStep(
  { dataset, synthetic, gen, model, update, world }: MethodContext,
  config: DMConfig,
  discrepancy: Discrepancy,
): StepResult {
  const k = dataset.numClasses;
  const net = createNetwork(model, dataset.imageShape, k);
  const group = sharedWorld(world);
  refuseBatchNorm(net, group, 'mix the classes that data parallelism splits');
  const drawn = net.init(gen);
  // With a bfloat16 real pass both sides use the same network, its weights rounded to bfloat16 (a random
  // network either way): the real and synthetic embeddings then differ only by the rounding of activations,
  // not by a systematic mismatch of networks that the matching would try to fit.
  const state = config.realDtype === 'bfloat16' ? roundedState(drawn, 'bfloat16') : drawn;
  // Like the reference (a permutation of the class, first n), a class smaller than batchReal gives all it has;
  // every class gives the same number so the batch stays one tensor.
  const batchReal = Math.min(config.batchReal, dataset.smallestClassSize);
  const dsa = methodDsa(config, dataset.name);
  const ipc = synthetic.decodedPerClass;
  try {
    return E.tidy(() => {
      const indices = dataset.sampleIndices(batchReal, gen);
      const draws = dsa?.sample(k, gen) ?? null;
      const mine = myClasses(k, group);
      const all = mine.length === k;
      const rows = (x: E.Tensor, per: number) =>
        all
          ? x
          : E.cat(
              mine.map((c) => x.narrow(0, c * per, per)),
              0,
            );
      let value: E.Tensor | null = null;
      let grads: (E.Tensor | null)[];
      if (mine.length > 0) {
        const real = dataset.gather(mine.flatMap((c) => indices.slice(c * batchReal, (c + 1) * batchReal)));
        const decoded = synthetic.decode();
        const problem: DMProblem = {
          net,
          state,
          classes: mine.length,
          real: real.images,
          perClass: batchReal,
          syn: rows(decoded.images, ipc),
          ipc,
          draws: draws ? mine.map((c) => draws[c]) : null,
          dsa,
          realDtype: config.realDtype,
          realChunk: config.realChunk,
        };
        ({ value, grads } = lossAndGradients(problem, discrepancy, config.synChunk, synthetic, decoded));
      } else grads = synthetic.learnable.map(() => null);
      if (!group) {
        const scalar = value!.item();
        update(grads, scalar);
        return { loss: scalar };
      }
      const shared = reduceGradients(group, grads, synthetic.learnable, value ? value.item() : 0);
      update(shared.grads, shared.loss);
      return { loss: shared.loss };
    });
  } finally {
    for (const t of [...state.params.values(), ...state.buffers.values()]) t.dispose();
  }
}

export const dm: Method<DMConfig> = registerMethod({
  name: 'dm',
  family: 'distribution matching',
  subFamily: 'feature mean matching',
  summary:
    'match per-class mean embeddings of real and synthetic images under random networks (Zhao & Bilen 2023)',
  needs: 'a dataset; no training of networks',
  schema: dmSchema as z.ZodType<DMConfig>,
  dataParallel: true,

  defaults: { init: 'real', iterations: 20000, optimizer: { kind: 'sgd', lr: 1, momentum: 0.5 } },
  // main_DM.py's eval_mode 'SS': a ConvNetBN set is evaluated on ConvNetBN.
  evalMode: 'SS',
  // The loss matches embeddings only: labels never enter it.
  labelGradients: false,

  step: (ctx: MethodContext, config: DMConfig): StepResult =>
    embeddingMatchingStep(ctx, config, meanDiscrepancy),
});
