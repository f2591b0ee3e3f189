// Errors raised by engine operations: the op name first, then what was wrong.

export class EngineError extends Error {
  constructor(
    readonly op: string,
    message: string,
  ) {
    super(`${op}: ${message}`);
    this.name = 'EngineError';
  }
}

/** Runs a native call, re-raising libtorch's message under the name of the op that failed. */
export function run<T>(op: string, call: () => T): T {
  try {
    return call();
  } catch (e) {
    if (e instanceof EngineError) throw e;
    const message = e instanceof Error ? e.message : String(e);
    // libtorch appends a C++ source location and dispatcher tables; keep the first paragraph.
    throw new EngineError(op, message.split('\n\n')[0].trim());
  }
}
