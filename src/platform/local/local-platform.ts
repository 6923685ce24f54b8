import { availableParallelism } from 'node:os';
import { REDIS_PASSWORD_ENV, REDIS_USERNAME_ENV } from '../../functions/credentials.ts';
import type { FunctionEvents, FunctionName, FunctionResults } from '../../functions/events.ts';
import { DEFAULT_LAMBDA_PRICES, type FunctionPlatform, type InvocationRecord, type LambdaPrices, type PlatformMetrics, type WarmModel } from '../platform.ts';
import { ensureNativeAddon } from '../../model/native-addon-build.ts';
import { RetriesExhausted } from '../retry.ts';
import { BilledTally, RecentRecords } from '../tally.ts';
import { PoolFailure, WorkerPool } from './pool.ts';
import type { InstanceMemory } from './protocol.ts';

export interface LocalPlatformOptions {
  /** Warm worker threads (function instances); default: the machine's cores. */
  workers?: number;
  /** Invocations running at once; the rest wait in a FIFO queue. Default: workers. */
  concurrency?: number;
  /** Per-invocation limit; past it the worker is terminated and replaced. Default 5 min. */
  timeoutMs?: number;
  /** Tries per invocation for failures that may pass (timeout, crash, connection). Default 3. */
  attempts?: number;
  /** Base delay of the exponential backoff between tries (jittered). Default 100 ms. */
  backoffMs?: number;
  /** V8 heap limit per worker (resourceLimits.maxOldGenerationSizeMb); wasm memory is separate. Default: memoryMb. */
  workerHeapMb?: number;
  /** Memory billed per invocation, as a Lambda function's configured memory. Default 2048 MB. */
  memoryMb?: number;
  prices?: LambdaPrices;
  /** Test only: workers honour an event's `__test` hooks (hang, crash); see protocol.ts. */
  testHooks?: boolean;
  /**
   * The functions' Redis user and password, put in the workers' environment (events never
   * carry them: src/functions/runtime.ts reads PEERLESS_REDIS_USERNAME and _PASSWORD).
   */
  redisCredentials?: { username?: string; password: string };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * The embedded serverless platform: a pool of warm worker threads, each a function
 * instance running the same handler code as Lambda or the HTTP server. Invocations beyond
 * the concurrency limit queue (FIFO); a hung invocation is terminated and its worker
 * replaced; only failures that may pass (timeout, crash, a refused or reset connection) are
 * retried, with exponential backoff; every call is metered and priced as AWS Lambda would
 * price it (billed duration = the handler's time measured in the worker, plus instance
 * start on a cold start; a timed-out try bills its full timeout).
 */
export class LocalPlatform implements FunctionPlatform {
  readonly kind = 'local' as const;
  private readonly pool: WorkerPool;
  /** Every try, billed (a retried call is one request per try, as Lambda bills it). */
  private readonly billed = new BilledTally();
  private readonly recent = new RecentRecords();
  private calls = 0;
  private failures = 0;
  private retries = 0;
  private coldStarts = 0;
  private warmStarts = 0;
  private readonly o: Required<Omit<LocalPlatformOptions, 'workerHeapMb' | 'testHooks' | 'redisCredentials'>>;

  constructor(opts: LocalPlatformOptions = {}) {
    const workers = opts.workers ?? availableParallelism();
    const positive = (what: string, v: number) => {
      if (!Number.isInteger(v) || v < 1) throw new Error(`local platform: ${what} must be a positive integer, got ${v}`);
      return v;
    };
    positive('workers', workers);
    this.o = {
      workers,
      concurrency: Math.min(positive('concurrency', opts.concurrency ?? workers), workers),
      timeoutMs: positive('timeoutMs', opts.timeoutMs ?? 300_000),
      attempts: positive('attempts', opts.attempts ?? 3),
      backoffMs: opts.backoffMs ?? 100,
      memoryMb: positive('memoryMb', opts.memoryMb ?? 2048),
      prices: opts.prices ?? DEFAULT_LAMBDA_PRICES,
    };
    // The native compute addon, built on first use where oneDNN is installed and nothing built
    // it yet (its path then travels to the workers in their environment).
    ensureNativeAddon();
    this.pool = new WorkerPool({
      size: workers,
      concurrency: this.o.concurrency,
      heapMb: opts.workerHeapMb ?? this.o.memoryMb,
      initTimeoutMs: 60_000,
      testHooks: opts.testHooks === true,
      ...(opts.redisCredentials ? { env: {
        [REDIS_PASSWORD_ENV]: opts.redisCredentials.password,
        ...(opts.redisCredentials.username ? { [REDIS_USERNAME_ENV]: opts.redisCredentials.username } : {}),
      } } : {}),
    });
  }

  /**
   * Starts every worker and loads the compute backend in it (and builds `models`), like
   * provisioned concurrency: the first invocations then start warm.
   */
  async warm(models: WarmModel[] = []): Promise<void> {
    await this.pool.fill();
    // Once on every instance (a job of the pool's own may land on any free one, twice on one).
    const runs = await this.pool.eachInstance({ name: '__warm', event: { models }, timeoutMs: this.o.timeoutMs });
    const names = [...new Set(runs.map((r) => r.reply.result).filter((b): b is string => typeof b === 'string'))];
    if (names.length > 0) this.computeBackend = names.join(', ');
  }

  /** The compute backend the workers loaded (known after warm()): "native", "wasm", ... */
  computeBackend?: string;

  /** Round trip of an empty call through the pool: its own overhead per invocation, ms. */
  async ping(): Promise<number> {
    const t = performance.now();
    const { reply } = await this.pool.run({ name: '__ping', event: null, timeoutMs: this.o.timeoutMs });
    if (!reply.ok) throw new Error(`ping failed: ${reply.error}`);
    return performance.now() - t;
  }

  async invoke<N extends FunctionName>(name: N, event: FunctionEvents[N], opts: { signal?: AbortSignal } = {}): Promise<FunctionResults[N]> {
    let billed = 0;
    let cold = false;
    let error: Error | undefined;
    let attempt = 0;
    let lastTransient = false;
    while (attempt < this.o.attempts) {
      attempt++;
      if (attempt > 1) await sleep(this.o.backoffMs * 2 ** (attempt - 2) * (0.5 + Math.random() / 2));
      if (opts.signal?.aborted) {
        error = new Error(`${name}: abandoned by the caller`);
        lastTransient = false;
        break;
      }
      let transient: boolean;
      try {
        const { reply, cold: c, initMs } = await this.pool.run({ name, event, timeoutMs: this.o.timeoutMs }, opts.signal);
        this.bill(reply.durationMs + initMs, c);
        billed += reply.durationMs + initMs;
        cold ||= c;
        if (reply.ok) {
          this.record({ name, durationMs: billed, memoryMb: this.o.memoryMb, coldStart: cold, ok: true, attempts: attempt });
          return reply.result as FunctionResults[N];
        }
        error = new Error(reply.error ?? `${name}: failed`);
        transient = reply.transient === true;
      } catch (err) {
        if (!(err instanceof PoolFailure)) throw err;
        // A call that never ran (the pool closed, or the caller left while it queued) bills nothing.
        if (err.kind !== 'closed' && !(err.kind === 'abandoned' && err.elapsedMs === 0)) {
          this.bill(err.elapsedMs, err.cold);
          billed += err.elapsedMs;
          cold ||= err.cold;
        }
        error = new Error(err.message);
        transient = err.transient;
      }
      lastTransient = transient;
      if (!transient) break;
    }
    this.record({ name, durationMs: billed, memoryMb: this.o.memoryMb, coldStart: cold, ok: false, attempts: attempt });
    if (attempt > 1) error!.message += ` (after ${attempt} attempts)`;
    throw new RetriesExhausted(error!, attempt, lastTransient);
  }

  private record(r: InvocationRecord): void {
    this.recent.push(r);
    this.calls++;
    if (!r.ok) this.failures++;
    this.retries += r.attempts - 1;
  }

  private bill(durationMs: number, cold: boolean): void {
    this.billed.add(durationMs, this.o.memoryMb);
    if (cold) this.coldStarts++;
    else this.warmStarts++;
  }

  /**
   * Invocations are calls of `invoke`; cold/warm starts, billed time and cost count every
   * try (a retried call is billed as one request per try, as Lambda does).
   */
  metrics(): PlatformMetrics {
    return {
      invocations: this.calls,
      failures: this.failures,
      retries: this.retries,
      coldStarts: this.coldStarts,
      warmStarts: this.warmStarts,
      billedMs: this.billed.billedMs,
      estimatedCostUsd: this.billed.costUsd(this.o.prices),
    };
  }

  /** The latest invocations, at most RECENT_RECORDS (for benchmarks' cost break-downs), oldest first. */
  invocations(): readonly InvocationRecord[] {
    return this.recent.list();
  }

  /**
   * Every live instance's heap, each measured when it is free (after a full collection when
   * the process runs with --expose-gc): what a long run's soak test watches for leaks.
   */
  async instanceMemory(): Promise<InstanceMemory[]> {
    const runs = await this.pool.eachInstance({ name: '__memory', event: null, timeoutMs: this.o.timeoutMs });
    return runs.map(({ reply }) => {
      if (!reply.ok) throw new Error(`memory probe failed: ${reply.error}`);
      return reply.result as InstanceMemory;
    });
  }

  /** Thread ids of the live workers (tests check that a hung worker was replaced). */
  workerThreadIds(): number[] {
    return this.pool.threadIds();
  }

  async close(): Promise<void> {
    await this.pool.close();
  }
}
