// `distillery launch --nproc N -- <command>`: torchrun's single-machine launch. Starts N copies of the
// command with RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT and
// OMP_NUM_THREADS (cores / N unless given) in their environment, prefixes each line of their output
// with its rank, and when one exits with a failure stops the others and exits with that status (the
// first failure's). The same command line runs under torchrun, srun or mpirun on many machines: the
// processes only read those variables.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { UsageError } from '../output.js';

export interface LaunchOptions {
  nproc: number;
  masterAddr?: string;
  masterPort?: number;
  /** Threads per process (OMP_NUM_THREADS); default: the cores divided among the processes. */
  threads?: number;
  /** Where output lines go (default: this process's stdout / stderr). */
  out?: (line: string) => void;
  err?: (line: string) => void;
}

const SUBCOMMANDS = new Set(['distill', 'experts', 'eval', 'study', 'coreset']);
const MAIN = fileURLToPath(new URL('../main.js', import.meta.url));

/** A free TCP port on the loopback interface (asked of the kernel, then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** The command to start: a distillery subcommand runs this installation's CLI with this Node. */
function commandLine(command: string[]): [string, string[]] {
  if (command.length === 0)
    throw new UsageError('launch needs a command after --, e.g. -- distill --method dm');
  if (SUBCOMMANDS.has(command[0])) return [process.execPath, [MAIN, ...command]];
  return [command[0], command.slice(1)];
}

function forward(stream: NodeJS.ReadableStream | null, prefix: string, sink: (line: string) => void): void {
  if (!stream) return;
  let rest = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    const parts = (rest + chunk).split(/\r?\n|\r/);
    rest = parts.pop() ?? '';
    for (const p of parts) sink(`${prefix}${p}`);
  });
  stream.on('end', () => {
    if (rest) sink(`${prefix}${rest}`);
  });
}

/**
 * Runs `command` as `nproc` ranks and resolves with the exit status to report: 0 when every rank
 * succeeded, else the first failing rank's status (128 + signal number for a signal).
 *
 * @example await launch(['distill', '--method', 'dm', '--ipc', '10'], { nproc: 2 })
 */
export async function launch(command: string[], o: LaunchOptions): Promise<number> {
  if (!Number.isInteger(o.nproc) || o.nproc < 1)
    throw new UsageError(`--nproc must be a positive integer, got ${o.nproc}`);
  const [file, args] = commandLine(command);
  const port = o.masterPort ?? (await freePort());
  const threads = o.threads ?? Math.max(1, Math.floor(availableParallelism() / o.nproc));
  const out = o.out ?? ((l: string) => process.stdout.write(`${l}\n`));
  const err = o.err ?? ((l: string) => process.stderr.write(`${l}\n`));
  const children: ChildProcess[] = [];
  let failure: number | null = null;
  const exits = Array.from({ length: o.nproc }, (_, rank) => {
    const child = spawn(file, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        RANK: String(rank),
        WORLD_SIZE: String(o.nproc),
        LOCAL_RANK: String(rank),
        LOCAL_WORLD_SIZE: String(o.nproc),
        MASTER_ADDR: o.masterAddr ?? '127.0.0.1',
        MASTER_PORT: String(port),
        OMP_NUM_THREADS: String(threads),
      },
    });
    children.push(child);
    const prefix = o.nproc > 1 ? `[rank ${rank}] ` : '';
    forward(child.stdout, prefix, out);
    forward(child.stderr, prefix, err);
    return new Promise<void>((resolve) => {
      child.on('error', (e) => {
        err(`${prefix}cannot start ${file}: ${e.message}`);
        failure ??= 127;
        stopOthers(child);
        resolve();
      });
      child.on('exit', (code, signal) => {
        const status = code ?? 128 + (signal ? signalNumber(signal) : 0);
        if (status !== 0 && failure === null) {
          failure = status;
          err(`${prefix}exited with status ${status}; stopping the other ranks`);
          stopOthers(child);
        }
        resolve();
      });
    });
  });
  const stopOthers = (except: ChildProcess) => {
    for (const c of children)
      if (c !== except && c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
  };
  const onSigint = () => children.forEach((c) => c.kill('SIGINT'));
  process.on('SIGINT', onSigint);
  try {
    await Promise.all(exits);
  } finally {
    process.off('SIGINT', onSigint);
  }
  return failure ?? 0;
}

function signalNumber(signal: NodeJS.Signals): number {
  const numbers: Partial<Record<NodeJS.Signals, number>> = {
    SIGINT: 2,
    SIGKILL: 9,
    SIGTERM: 15,
    SIGSEGV: 11,
    SIGABRT: 6,
  };
  return numbers[signal] ?? 1;
}
