// libtorch's distributed engine (c10d) with the Gloo backend: a process group over a TCP (or, on one
// machine, file) rendezvous store and the collectives the methods need. Conventions follow torchrun:
// RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT in the environment. Every collective waits at
// most the group's timeout and fails with a DistributedError naming the collective, the rank and
// libtorch's reason (a peer that died, a timeout), never hanging.
import { native, type GroupHandle } from './native.js';
import { Tensor } from './tensor.js';

export class DistributedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DistributedError';
  }
}

export type ReduceOp = 'sum' | 'max' | 'min' | 'product';

export interface GroupOptions {
  rank: number;
  worldSize: number;
  /** Rendezvous: 'tcp' (host and port; rank 0 serves the store) or 'file' (a path all ranks share). */
  store?: 'tcp' | 'file';
  host?: string;
  port?: number;
  file?: string;
  /** Collective and rendezvous timeout (default 30 minutes, torch.distributed's). */
  timeoutMs?: number;
  /** Key prefix in the store (several groups may share one store). */
  prefix?: string;
}

function call<T>(what: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof DistributedError) throw e;
    throw new DistributedError(`${what}: ${e instanceof Error ? e.message.split('\n\n')[0] : String(e)}`);
  }
}

function checkInt(name: string, v: number, min: number, max = Infinity): void {
  if (!Number.isInteger(v) || v < min || v > max)
    throw new DistributedError(`${name} must be an integer in [${min}, ${max}], got ${v}`);
}

/**
 * A c10d Gloo process group. One per process; `close()` releases its connections.
 *
 * @example
 * const g = ProcessGroup.fromEnv(); // RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT as torchrun sets them
 * const t = E.tensor([g.rank]); g.allReduce([t]); // every rank: 0 + 1 + ... + (size - 1)
 */
export class ProcessGroup {
  #handle: GroupHandle | null;

  private constructor(
    handle: GroupHandle,
    readonly rank: number,
    readonly worldSize: number,
    readonly timeoutMs: number,
  ) {
    this.#handle = handle;
  }

  static create(o: GroupOptions): ProcessGroup {
    checkInt('worldSize', o.worldSize, 1);
    checkInt('rank', o.rank, 0, o.worldSize - 1);
    const timeoutMs = o.timeoutMs ?? 1_800_000;
    checkInt('timeoutMs', timeoutMs, 1);
    const kind = o.store ?? 'tcp';
    if (kind === 'file' && !o.file)
      throw new DistributedError("a 'file' store needs the path all ranks share");
    if (kind === 'tcp') checkInt('port', o.port ?? -1, 1, 65535);
    const address = kind === 'tcp' ? (o.host ?? '127.0.0.1') : o.file!;
    const where = kind === 'tcp' ? `${address}:${o.port}` : address;
    const handle = call(`cannot join the process group at ${where} as rank ${o.rank} of ${o.worldSize}`, () =>
      native.distInit(o.rank, o.worldSize, timeoutMs, kind, address, o.port ?? 0, o.prefix ?? 'distillery/'),
    );
    return new ProcessGroup(handle, o.rank, o.worldSize, timeoutMs);
  }

  /** The group torchrun's (or `distillery launch`'s) environment describes. */
  static fromEnv(env: NodeJS.ProcessEnv = process.env, o: { timeoutMs?: number } = {}): ProcessGroup {
    const w = worldFromEnv(env);
    if (!w)
      throw new DistributedError(
        'RANK and WORLD_SIZE are not set: start the processes with `distillery launch`',
      );
    return ProcessGroup.create({ ...w, store: 'tcp', timeoutMs: o.timeoutMs });
  }

  get handle(): GroupHandle {
    if (!this.#handle) throw new DistributedError('the process group was closed');
    return this.#handle;
  }

  /** In place: every rank's tensors become the reduction over ranks. Tensors must be contiguous. */
  allReduce(tensors: Tensor[], op: ReduceOp = 'sum'): void {
    call('allReduce', () =>
      native.distAllReduce(
        this.handle,
        tensors.map((t) => t.handle),
        op,
      ),
    );
  }

  /** In place: every rank's tensors become `root`'s. */
  broadcast(tensors: Tensor[], root = 0): void {
    checkInt('root', root, 0, this.worldSize - 1);
    call('broadcast', () =>
      native.distBroadcast(
        this.handle,
        tensors.map((t) => t.handle),
        root,
      ),
    );
  }

  /** Every rank's `t` (same shape and dtype everywhere), in rank order. */
  allGather(t: Tensor): Tensor[] {
    return call('allGather', () => native.distAllGather(this.handle, t.handle)).map((h) => new Tensor(h));
  }

  barrier(): void {
    call('barrier', () => native.distBarrier(this.handle));
  }

  /** A string every rank can read (rendezvous metadata: settings to agree on, a checksum). */
  setValue(key: string, value: string): void {
    call('store set', () => native.distStoreSet(this.handle, key, value));
  }

  /** Waits (up to the timeout) for `key` and returns its value. */
  getValue(key: string): string {
    return call(`store get '${key}'`, () => native.distStoreGet(this.handle, key));
  }

  close(): void {
    if (this.#handle) native.distDestroy(this.#handle);
    this.#handle = null;
  }
}

export interface WorldEnv {
  rank: number;
  worldSize: number;
  localRank: number;
  host: string;
  port: number;
}

/** torchrun's variables, validated; null when RANK / WORLD_SIZE are absent (a single process). */
export function worldFromEnv(env: NodeJS.ProcessEnv = process.env): WorldEnv | null {
  if (env.RANK === undefined && env.WORLD_SIZE === undefined) return null;
  const int = (name: string, fallback?: number) => {
    const raw = env[name];
    if (raw === undefined) {
      if (fallback !== undefined) return fallback;
      throw new DistributedError(
        `${name} is not set (RANK and WORLD_SIZE must come together, with MASTER_PORT)`,
      );
    }
    const v = Number(raw);
    if (!Number.isInteger(v) || v < 0)
      throw new DistributedError(`${name}=${raw} is not a non-negative integer`);
    return v;
  };
  const worldSize = int('WORLD_SIZE');
  const rank = int('RANK');
  if (worldSize < 1 || rank >= worldSize)
    throw new DistributedError(`RANK=${rank} must be below WORLD_SIZE=${worldSize}`);
  return {
    rank,
    worldSize,
    localRank: int('LOCAL_RANK', rank),
    host: env.MASTER_ADDR ?? '127.0.0.1',
    port: worldSize === 1 ? int('MASTER_PORT', 29500) : int('MASTER_PORT'),
  };
}
