/**
 * How the long-running commands answer signals: exit codes by the shell's convention
 * (128 + the signal's number), and a bound on how long stopping may take.
 */
export type StopSignal = 'SIGINT' | 'SIGTERM';

export const SIGNAL_EXIT: Record<StopSignal, number> = { SIGINT: 130, SIGTERM: 143 };

/** Resolves with the first SIGINT or SIGTERM, which also sets the process's exit code. */
export function untilSignal(): Promise<StopSignal> {
  return new Promise((resolve) => {
    const on = (sig: StopSignal) => () => {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      process.exitCode = SIGNAL_EXIT[sig];
      resolve(sig);
    };
    const onInt = on('SIGINT'), onTerm = on('SIGTERM');
    process.once('SIGINT', onInt);
    process.once('SIGTERM', onTerm);
  });
}

/**
 * The benchmarks keep nothing worth a graceful stop: SIGINT or SIGTERM exits at once with its
 * code, and the exit runs the handlers that kill the redis-servers this process started and
 * remove their directories (Node's default for these signals ends the process without them,
 * leaving the servers orphaned).
 */
export function exitOnSignal(): void {
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => process.exit(SIGNAL_EXIT[sig]));
}

/**
 * Runs `stop`, then exits with the signal's code: at once when it is done, or after `ms` if
 * it is not (a server waiting on a client that never hangs up, a cached connection keeping
 * the event loop alive must not keep the process).
 */
export async function stopWithin(sig: StopSignal, stop: () => Promise<void>, ms = 2_000): Promise<never> {
  const timer = setTimeout(() => process.exit(SIGNAL_EXIT[sig]), ms);
  try {
    await stop();
  } finally {
    clearTimeout(timer);
  }
  process.exit(SIGNAL_EXIT[sig]);
}

/**
 * The round-boundary stop of `train` and `peer`: a first Ctrl-C sets exit code 130 and calls
 * `graceful`; a second Ctrl-C, or SIGTERM, quits at once (130, 143) after `beforeExit`.
 * Returns what removes the handlers.
 */
export function stopAtBoundary(graceful: () => void, beforeExit?: () => void): () => void {
  let asked = false;
  const on = (sig: StopSignal) => () => {
    if (sig === 'SIGTERM' || asked) {
      beforeExit?.();
      process.exit(SIGNAL_EXIT[sig]);
    }
    asked = true;
    process.exitCode = SIGNAL_EXIT[sig];
    graceful();
  };
  const onInt = on('SIGINT'), onTerm = on('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  return () => {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
  };
}
