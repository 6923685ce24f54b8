/**
 * Hedged calls: a second copy of a call that is slow to answer. On a platform that gives
 * every call an instance of its own at once (Lambda), a copy costs only its bill, while a call
 * held by a stalled instance, a gateway or a lost connection costs the round its whole
 * timeout. Gradients count once per batch, whichever attempt lands first, so a copy is safe.
 * A queueing platform (the local pool, `function serve` over it) would make the copy wait
 * behind the round's own calls, so only platforms that say they are elastic are hedged.
 */

/**
 * A hedge waits for the tail of the latest calls: their 95th percentile, as in "The Tail at
 * Scale" (Dean and Barroso), so about one call in twenty gets a copy when nothing is wrong.
 * It is kept between HEDGE_MIN_FACTOR and HEDGE_MAX_FACTOR times their median: calls that
 * take nearly the same time would otherwise copy ordinary jitter, and a few slow ones would
 * postpone every hedge. Never less than MIN_HEDGE_MS.
 */
export const HEDGE_MIN_FACTOR = 1.5;
export const HEDGE_MAX_FACTOR = 3;
export const MIN_HEDGE_MS = 50;
/** Calls the tail is taken over: the latest ones, so it follows the model and the load. */
const WINDOW = 32;
/** Calls seen before hedging (calls that built the model are not added: see CallTimes.add). */
const WARM_UP = 3;

/** The recent successful calls' times, and when a call is slow enough to hedge. */
export class CallTimes {
  private readonly times: number[] = [];

  /** A successful call's time. Not one that built the model: a cold start says nothing of the next call. */
  add(ms: number): void {
    this.times.push(ms);
    if (this.times.length > WINDOW) this.times.shift();
  }

  /** When to start a copy, ms after the call; 0 (never) until enough calls were seen. */
  hedgeAfterMs(): number {
    const n = this.times.length;
    if (n < WARM_UP) return 0;
    const sorted = [...this.times].sort((a, b) => a - b);
    const median = sorted[n >> 1]!, p95 = sorted[Math.ceil(0.95 * n) - 1]!;
    return Math.max(MIN_HEDGE_MS, Math.min(HEDGE_MAX_FACTOR * median, Math.max(HEDGE_MIN_FACTOR * median, p95)));
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
 * Copies of one call at most: the call and three more (hedges, or copies replacing failed
 * ones); past them, the caller's retries. At 3, with 20% of calls failing (bench faults), about
 * two rounds in 40 had every copy of a call held and waited out the whole timeout; at 4, none
 * in three runs.
 */
export const MAX_COPIES = 4;

/**
 * Runs `start`, and once more each `afterMs` (0: never) that none answered, up to MAX_COPIES.
 * The first copy to succeed wins and the others are told to stop through their signals. A copy
 * that fails is replaced at once when `replace(err)` says another call may pass (on an elastic
 * platform a fresh call gets a fresh instance, so a gateway error or a reset costs one call,
 * not a backoff too), up to MAX_COPIES; otherwise any others are left to finish. When every
 * copy failed, the first failure is the error: the caller's retry policy decides what comes
 * next (with backoff). `signal` stops them all (the caller's deadline).
 */
export function hedged<T>(
  start: (signal: AbortSignal) => Promise<T>, afterMs: number, signal?: AbortSignal, replace: (err: unknown) => boolean = () => false,
): Promise<Hedged<T>> {
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
          if (settled) return;
          // A fresh copy takes the failed one's place: waiting for a late one still running
          // would cost the caller its timeout, and a backoff would cost it as much again.
          const mayPass = replace(err);
          if (copies.length < MAX_COPIES && !signal?.aborted && mayPass) { launch(); return; }
          // A copy that failed on its own input says the others will: no more copies.
          if (!mayPass) clearTimeout(timer);
          // The others may still answer.
          if (running === 0) finish(() => reject(firstError));
        },
      );
    };
    if (signal?.aborted) { reject(signal.reason); return; }
    signal?.addEventListener('abort', stopAll, { once: true });
    // A copy every `afterMs` while none answered, up to MAX_COPIES: a copy can be held too.
    const hedge = () => {
      if (settled || running === 0 || copies.length >= MAX_COPIES) return;
      launch();
      timer = setTimeout(hedge, afterMs);
    };
    launch();
    if (afterMs > 0) timer = setTimeout(hedge, afterMs);
  });
}
