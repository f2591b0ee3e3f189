// How commands report: human lines and progress bars on a terminal, or one JSON
// object per line with --json (for scripts).
import cliProgress from 'cli-progress';
import { precisionOption } from '../distill/precision.js';
import type { TrainingPrecision } from '../eval/index.js';

/** Bad command-line input: reported without a stack trace, exit status 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** A --precision flag: float32, bfloat16 or auto (bfloat16 where the CPU computes it natively). */
export function parsePrecision(p: string, flag = '--precision'): TrainingPrecision {
  const parsed = precisionOption('float32').safeParse(p);
  if (!parsed.success) throw new UsageError(`${flag}: expected float32, bfloat16 or auto, got '${p}'`);
  return parsed.data;
}

export interface Reporter {
  /** A human-readable line (suppressed in JSON mode). */
  info(line: string): void;
  /** A structured event: a JSON line in JSON mode, nothing otherwise. */
  event(type: string, data: Record<string, unknown>): void;
  /** A progress bar of `total` steps; update(done, fields) and stop(). */
  progress(
    label: string,
    total: number,
  ): { update(done: number, fields?: Record<string, string>): void; stop(): void };
  /** The final result: pretty text, or a JSON line of type 'result'. */
  result(text: string, data: Record<string, unknown>): void;
}

/** '1 h 05 min', '3 min 20 s', '12 s'. */
export function duration(seconds: number): string {
  const s = Math.round(seconds);
  if (s >= 3600) {
    const minutes = Math.round(s / 60); // whole minutes first, so 59.5 never prints as '60 min'
    return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, '0')} min`;
  }
  if (s >= 60) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  return `${s} s`;
}

/**
 * Progress without a terminal (logs, nohup, batch jobs): a line per 10 % with the latest status
 * (loss, rate), the elapsed time and an ETA from the rate since the first update (a resumed run's
 * first update is its start).
 */
function lineProgress(label: string, total: number, json: boolean): ReturnType<Reporter['progress']> {
  let last = -1;
  let first: { done: number; at: number } | null = null;
  return {
    update: (done, fields) => {
      const now = performance.now();
      first ??= { done, at: now };
      const decile = Math.floor((10 * done) / Math.max(1, total));
      if (json || decile === last || done === 0) return;
      last = decile;
      const elapsed = (now - first.at) / 1000;
      const rate = (done - first.done) / Math.max(elapsed, 1e-9);
      const eta = rate > 0 ? `, ETA ${duration((total - done) / rate)}` : '';
      const status = fields?.status ? ` ${fields.status}` : '';
      console.error(`${label}: ${done}/${total}${status} | ${duration(elapsed)} elapsed${eta}`);
    },
    stop: () => undefined,
  };
}

export function createReporter(json: boolean): Reporter {
  const tty = process.stderr.isTTY === true && !json;
  return {
    info: (line) => {
      if (!json) console.log(line);
    },
    event: (type, data) => {
      if (json) console.log(JSON.stringify({ type, ...data }));
    },
    progress: (label, total) => {
      if (!tty) return lineProgress(label, total, json);
      const bar = new cliProgress.SingleBar(
        {
          format: `${label} [{bar}] {value}/{total} {status} | {duration_formatted} elapsed, ETA {eta_formatted}`,
          hideCursor: true,
          stream: process.stderr,
        },
        cliProgress.Presets.shades_classic,
      );
      bar.start(total, 0, { status: '' });
      return {
        update: (done, fields) => bar.update(done, { status: '', ...fields }),
        stop: () => bar.stop(),
      };
    },
    result: (text, data) => {
      if (json) console.log(JSON.stringify({ type: 'result', ...data }));
      else console.log(text);
    },
  };
}

export function pct(x: number): string {
  return `${(100 * x).toFixed(2)}`;
}

/** '54.80 +- 1.20' over several networks; one network's result says n=1, never '+- 0.00'. */
export function scoreText(s: { mean: number; std: number; runs: number[] }, unit = ''): string {
  return s.runs.length === 1 ? `${pct(s.mean)}${unit} (n=1)` : `${pct(s.mean)}${unit} +- ${pct(s.std)}`;
}
