// How a synthetic set is stored (its parameterization), orthogonal to the matching objective:
// raw pixels, IDC's multi-formation, LinBa's shared bases, HaBa's bases x hallucinators. Each
// kind declares its settings, validates them against the image shape and the storage budget,
// builds its learnable tensors from initial images, and restores them from saved tensors.
// decode() is differentiable and returns class-ordered images (decodedPerClass of each class),
// so methods never assume a row count. Each kind registers itself in its own file.
import { z } from 'zod';
import type * as E from '../engine/index.js';

/** Optimizer group a learnable tensor belongs to (each group has its own optimizer settings). */
export type TensorGroup = 'images' | 'decoder';

export interface NamedTensor {
  name: string;
  group: TensorGroup;
  tensor: E.Tensor;
}

export interface Parameterization {
  readonly kind: string;
  /** The validated settings that rebuild it (recorded in checkpoints and artifacts). */
  readonly settings: Record<string, unknown>;
  /** Decoded training images of each class. */
  readonly decodedPerClass: number;
  /** Every learnable tensor, by name and group, in a fixed order. */
  readonly tensors: readonly NamedTensor[];
  /** Images [classes * decodedPerClass, C, H, W] in model-input space, class-ordered, differentiable. */
  decode(): E.Tensor;
}

export interface ShapeInfo {
  imageShape: [number, number, number];
  classes: number;
  ipc: number;
}

export interface ParameterizationKind<S extends Record<string, unknown>> {
  readonly kind: string;
  readonly summary: string;
  /** Settings (everything but `kind`), with defaults. */
  readonly schema: z.ZodType<S, z.ZodTypeDef, unknown>;
  /**
   * Throws ParameterizationError when the settings do not fit the images or the budget of
   * classes x ipc images (e.g. a factor that does not divide the image size).
   */
  validate(shape: ShapeInfo, settings: S): void;
  /** Full-resolution images per class the initialisation draws (real, noise or a coreset). */
  initImagesPerClass(shape: ShapeInfo, settings: S): number;
  /**
   * The learnable tensors, built from `init` (class-ordered, initImagesPerClass of each class; borrowed:
   * the caller disposes it). Runs inside a tidy() scope: every tensor it returns must be kept.
   */
  create(shape: ShapeInfo, settings: S, init: E.Tensor, gen: E.Generator): Parameterization;
  /** The names of the tensors it stores (NamedTensor.name), for these settings. */
  tensorNames(shape: ShapeInfo, settings: S): string[];
  /** Rebuilds it from saved tensors (by NamedTensor.name), which it takes ownership of. */
  restore(shape: ShapeInfo, settings: S, tensors: Record<string, E.Tensor>): Parameterization;
}

export class ParameterizationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ParameterizationError';
  }
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyKind = ParameterizationKind<any>;
const kinds = new Map<string, AnyKind>();

/** Registers a parameterization kind (each kind's own file calls this). */
export function registerParameterization<S extends Record<string, unknown>>(
  k: ParameterizationKind<S>,
): ParameterizationKind<S> {
  if (kinds.has(k.kind)) throw new Error(`a parameterization named '${k.kind}' is already registered`);
  kinds.set(k.kind, k);
  return k;
}

export function parameterizationKinds(): AnyKind[] {
  return [...kinds.values()];
}

export function getParameterizationKind(kind: string): AnyKind {
  const k = kinds.get(kind);
  if (!k)
    throw new ParameterizationError(
      `unknown parameterization '${kind}' (available: ${[...kinds.keys()].join(', ')})`,
    );
  return k;
}

/** The config entry: `{ kind, ...settings }`. */
export const parameterizationConfigSchema = z
  .object({ kind: z.string().default('pixels') })
  .passthrough()
  .default({});
export type ParameterizationConfig = z.infer<typeof parameterizationConfigSchema>;

/** Splits `{kind, ...settings}` and validates the settings (defaults filled) against the shape. */
export function resolveParameterization(
  config: ParameterizationConfig,
  shape?: ShapeInfo,
): { kind: AnyKind; settings: Record<string, unknown> } {
  const { kind: name, ...rest } = config;
  const kind = getParameterizationKind(name);
  const parsed = kind.schema.safeParse(rest);
  if (!parsed.success)
    throw new ParameterizationError(
      `invalid ${name} settings: ${parsed.error.issues.map((i) => `${i.path.join('.') || name}: ${i.message}`).join('; ')}`,
    );
  const settings = parsed.data as Record<string, unknown>;
  if (shape) kind.validate(shape, settings);
  return { kind, settings };
}

/** kind.restore after checking that every tensor it needs is there (a clear error naming the missing ones). */
export function restoreParameterization(
  kind: AnyKind,
  shape: ShapeInfo,
  settings: Record<string, unknown>,
  tensors: Record<string, E.Tensor>,
): Parameterization {
  const missing = kind.tensorNames(shape, settings).filter((n) => !(n in tensors));
  if (missing.length)
    throw new ParameterizationError(
      `the saved ${kind.kind} tensors lack ${missing.join(', ')} (present: ${Object.keys(tensors).join(', ') || 'none'})`,
    );
  return kind.restore(shape, settings, tensors);
}

/** Stored floats of a parameterization's tensors. */
export function storedFloats(p: Parameterization): number {
  return p.tensors.reduce((n, t) => n + t.tensor.numel, 0);
}
