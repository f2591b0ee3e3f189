// `distillery launch --nproc N -- <command>`: torchrun's single-machine launch. Starts N copies of the
// command with RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT and
// OMP_NUM_THREADS (cores / N unless given) in their environment, prefixes each line of their output
// with its rank, and when one exits with a failure stops the others and exits with that status (the
// first failure's). The same command line runs under torchrun, srun or mpirun on many machines: the
// processes only read those variables.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { availableParallelism, constants as osConstants } from 'node:os';
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

/** The distillery subcommands that join the process group; the others would run N full copies. */
const DATA_PARALLEL = new Set(['distill', 'experts']);
const SINGLE_PROCESS = new Set([
  'eval',
  'study',
  'coreset',
  'continual',
  'report',
  'show',
  'export',
  'methods',
  'datasets',
  'demo',
  'launch',
]);
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
  if (DATA_PARALLEL.has(command[0])) return [process.execPath, [MAIN, ...command]];
  if (SINGLE_PROCESS.has(command[0]))
    throw new UsageError(
      `'${command[0]}' does not run data-parallel (only ${[...DATA_PARALLEL].join(' and ')} do; distill's evaluation is shared among the ranks): run it without launch`,
    );
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
      // Its own process group: a Ctrl-C at the terminal reaches the launcher only, which forwards one
      // SIGINT (a rank's second SIGINT means "quit now, no checkpoint").
      detached: true,
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
  // Forward what the launcher is asked to do: the ranks are in their own process groups, so nothing else
  // would reach them (and they must not outlive a terminated launcher).
  const forwardSignal = (signal: NodeJS.Signals) => () =>
    children.forEach((c) => {
      if (c.exitCode === null && c.signalCode === null) c.kill(signal);
    });
  const handlers: [NodeJS.Signals, () => void][] = [
    ['SIGINT', forwardSignal('SIGINT')],
    ['SIGTERM', forwardSignal('SIGTERM')],
    ['SIGHUP', forwardSignal('SIGTERM')],
  ];
  for (const [sig, h] of handlers) process.on(sig, h);
  const onExit = forwardSignal('SIGKILL');
  process.on('exit', onExit);
  try {
    await Promise.all(exits);
  } finally {
    for (const [sig, h] of handlers) process.off(sig, h);
    process.off('exit', onExit);
  }
  return failure ?? 0;
}

function signalNumber(signal: NodeJS.Signals): number {
  return osConstants.signals[signal] ?? 1;
}
