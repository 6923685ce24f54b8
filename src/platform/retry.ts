/**
 * Retries with exponential backoff and full jitter, for the remote platforms (HTTP, AWS
 * Lambda). Only errors the caller classifies as transient are retried: a function that
 * failed on its own input fails the same way again, so retrying it only wastes time.
 * Gradient pushes are idempotent per (round, batch id), so a retried invocation whose
 * first attempt did land counts once.
 */
export interface RetryOptions {
  /** Total attempts, including the first (default 3). */
  attempts?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** A deadline (performance.now() time): no retry whose wait would reach it. */
  until?: number;
  /** No retry once it fires (the attempt under way runs to its end). */
  signal?: AbortSignal;
}

export interface RetryOutcome<T> {
  value: T;
  attempts: number;
}

/**
 * A platform gave up on an invocation: how many attempts it made, and whether a later call
 * may still pass (`retryable`: a lost connection, a gateway error, a timeout), which the peer
 * retries until the round's function deadline, unlike a function that failed on its input.
 */
export class RetriesExhausted extends Error {
  /**
   * `throttled`: the platform said it is over its limit (429, Lambda's throttling errors). Such
   * a call may pass later, but only after a backoff: a copy sent at once adds to the overload.
   */
  constructor(override readonly cause: Error, readonly attempts: number, readonly retryable = false, readonly throttled = false) {
    super(cause.message);
    this.name = cause.name;
  }
}

/** Whether an invocation error may pass on a later call (see RetriesExhausted). */
export function mayPassLater(err: unknown): boolean {
  return (err as { retryable?: unknown })?.retryable === true;
}

/** Whether another call may go out at once: it may pass later, and the platform is not throttling. */
export function mayPassAtOnce(err: unknown): boolean {
  return mayPassLater(err) && (err as { throttled?: unknown })?.throttled !== true;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** `work`, or the error `late()` once `ms` have passed (work that settles later is ignored). */
export function withTimeout<T>(work: Promise<T>, ms: number, late: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  work.catch(() => {});
  const timeout = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(late()), Math.max(0, ms)); });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

export async function withRetries<T>(
  attempt: (n: number) => Promise<T>,
  isTransient: (err: unknown) => boolean,
  opts: RetryOptions = {},
): Promise<RetryOutcome<T>> {
  const attempts = Math.max(1, opts.attempts ?? 3);
  const base = opts.baseDelayMs ?? 100;
  const max = opts.maxDelayMs ?? 2_000;
  for (let n = 1; ; n++) {
    try {
      return { value: await attempt(n), attempts: n };
    } catch (err) {
      const e = err instanceof Error ? err : new Error(String(err));
      if (n >= attempts || !isTransient(err) || opts.signal?.aborted) throw new RetriesExhausted(e, n);
      // Full jitter: many functions of one round retrying together must not stampede.
      const wait = Math.random() * Math.min(max, base * 2 ** (n - 1));
      if (opts.until !== undefined && performance.now() + wait >= opts.until) throw new RetriesExhausted(e, n);
      await sleep(wait);
    }
  }
}

/** Node's socket-level error codes that mean "try again", not "your request is wrong". */
const NETWORK_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH',
  'EAI_AGAIN', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_CLOSED',
]);

/** The socket error code of an error or of its cause chain (fetch wraps them), if any. */
export function networkCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && NETWORK_CODES.has(code)) return code;
    // AggregateError (happy eyeballs over IPv4 and IPv6) holds the real codes inside.
    const inner = (e as { errors?: unknown[] }).errors;
    if (Array.isArray(inner)) for (const i of inner) { const c = networkCode(i); if (c) return c; }
  }
  return undefined;
}
