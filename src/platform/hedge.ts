/**
 * Hedged calls: a second copy of a call that is slow to answer. On a platform that gives
 * every call an instance of its own at once (Lambda), a copy costs only its bill, while a call
 * held by a stalled instance, a gateway or a lost connection costs the round its whole
 * timeout. Gradients count once per batch, whichever attempt lands first, so a copy is safe.
 * A queueing platform (the local pool, `function serve` over it) would make the copy wait
 * behind the round's own calls, so only platforms that say they are elastic are hedged.
 */

/** A hedge waits this many times the typical call, and never less than MIN_HEDGE_MS. */
export const HEDGE_FACTOR = 3;
export const MIN_HEDGE_MS = 50;
/** Calls the typical time is taken over: the latest ones, so it follows the model and the load. */
const WINDOW = 32;
/** Calls seen before hedging: a round's first calls build the model and say nothing of the rest. */
const WARM_UP = 8;

/** The recent successful calls' times, and when a call is slow enough to hedge. */
export class CallTimes {
  private readonly times: number[] = [];

  add(ms: number): void {
    this.times.push(ms);
    if (this.times.length > WINDOW) this.times.shift();
  }

  /** When to start a copy, ms after the call; 0 (never) until enough calls were seen. */
  hedgeAfterMs(): number {
    if (this.times.length < WARM_UP) return 0;
    const sorted = [...this.times].sort((a, b) => a - b);
    return Math.max(MIN_HEDGE_MS, HEDGE_FACTOR * sorted[sorted.length >> 1]);
  }
}

export interface Hedged<T> {
  value: T;
  /** The winning copy's own time, ms (what CallTimes learns from). */
  ms: number;
  /** Whether a second copy was started. */
  hedged: boolean;
}

/**
 * Runs `start`, and once more if the first has not answered after `afterMs` (0: never). The
 * first copy to succeed wins and the other is told to stop through its signal; a copy that
 * fails leaves the other to finish; when both fail, the first failure is the error. `signal`
 * stops both (the caller's deadline).
 */
export function hedged<T>(start: (signal: AbortSignal) => Promise<T>, afterMs: number, signal?: AbortSignal): Promise<Hedged<T>> {
  return new Promise((resolve, reject) => {
    const copies: AbortController[] = [];
    let running = 0, settled = false, firstError: unknown, timer: NodeJS.Timeout | undefined;
    const finish = (f: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', stopAll);
      f();
    };
    const stopAll = () => { clearTimeout(timer); for (const c of copies) c.abort(); };
    const launch = () => {
      const stop = new AbortController();
      copies.push(stop);
      running++;
      const t0 = performance.now();
      start(stop.signal).then(
        (value) => finish(() => {
          for (const c of copies) if (c !== stop) c.abort();
          resolve({ value, ms: performance.now() - t0, hedged: copies.length > 1 });
        }),
        (err: unknown) => {
          running--;
          if (firstError === undefined) firstError = err;
          // The other copy may still answer; so may one not started yet, once its time comes,
          // but a call that failed fast is for the caller's retry policy, not for a hedge.
          if (running === 0) finish(() => reject(firstError));
        },
      );
    };
    if (signal?.aborted) { reject(signal.reason); return; }
    signal?.addEventListener('abort', stopAll, { once: true });
    launch();
    if (afterMs > 0) timer = setTimeout(() => { if (!settled && running > 0) launch(); }, afterMs);
  });
}
