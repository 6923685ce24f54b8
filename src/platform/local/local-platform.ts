import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { FunctionEvents, FunctionName, FunctionResults } from '../../functions/events.ts';
import { DEFAULT_LAMBDA_PRICES, lambdaCost, type FunctionPlatform, type InvocationRecord, type LambdaPrices, type PlatformMetrics } from '../platform.ts';
import type { WorkerReply, WorkerRequest } from './worker.ts';

export interface LocalPlatformOptions {
  /** Warm worker threads (function instances); default: the machine's cores. */
  workers?: number;
  /** Invocations running at once; the rest wait in a FIFO queue. Default: workers. */
  concurrency?: number;
  /** Per-invocation limit; past it the worker is terminated and replaced. Default 5 min. */
  timeoutMs?: number;
  /** Tries per invocation for failures that may pass (timeout, crash, connection). Default 3. */
  attempts?: number;
  /** JS heap limit per worker (wasm memory is separate). Default 2048 MB. */
  workerHeapMb?: number;
  /** Memory billed per invocation, as a Lambda function's configured memory. Default 2048 MB. */
  memoryMb?: number;
  prices?: LambdaPrices;
  /** Base delay of the exponential backoff between tries. Default 100 ms. */
  backoffMs?: number;
}

/** A failure that a new try may not meet again: the worker died or timed out, or Redis was unreachable. */
export class TransientError extends Error {}

const TRANSIENT = /ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|socket|cannot reach|connection|LOADING/i;

interface Slot {
  worker: Worker;
  busy: boolean;
}

interface Job {
  request: Omit<WorkerRequest, 'id'>;
  resolve(reply: WorkerReply): void;
  reject(err: Error): void;
}

const ENTRY = new URL('./worker-entry.mjs', import.meta.url);

/**
 * The embedded serverless platform: a pool of warm worker threads, each a function
 * instance running the same handler code as Lambda or the HTTP server. Invocations beyond
 * the concurrency limit queue; a hung invocation is terminated and its worker replaced;
 * failures that may pass are retried with backoff; every call is metered and priced as
 * AWS Lambda would price it.
 */
export class LocalPlatform implements FunctionPlatform {
  readonly kind = 'local' as const;
  private readonly slots: Slot[] = [];
  private readonly queue: Job[] = [];
  private readonly records: InvocationRecord[] = [];
  private running = 0;
  private nextId = 1;
  private closed = false;
  private coldStarts = 0;
  private warmStarts = 0;
  private retries = 0;
  private readonly o: Required<LocalPlatformOptions>;

  constructor(opts: LocalPlatformOptions = {}) {
    const workers = opts.workers ?? availableParallelism();
    if (!Number.isInteger(workers) || workers < 1) throw new Error(`local platform: workers must be a positive integer, got ${workers}`);
    this.o = {
      workers, concurrency: opts.concurrency ?? workers, timeoutMs: opts.timeoutMs ?? 300_000, attempts: opts.attempts ?? 3,
      workerHeapMb: opts.workerHeapMb ?? 2048, memoryMb: opts.memoryMb ?? 2048, prices: opts.prices ?? DEFAULT_LAMBDA_PRICES,
      backoffMs: opts.backoffMs ?? 100,
    };
  }

  private spawn(): Slot {
    const worker = new Worker(ENTRY, { resourceLimits: { maxOldGenerationSizeMb: this.o.workerHeapMb } });
    worker.unref();
    const slot = { worker, busy: false };
    this.slots.push(slot);
    return slot;
  }

  private replace(slot: Slot): void {
    const i = this.slots.indexOf(slot);
    if (i >= 0) this.slots.splice(i, 1);
    void slot.worker.terminate();
  }

  /** Starts every worker and loads the compute backend in it, so the first round is warm. */
  async warm(): Promise<void> {
    while (this.slots.length < this.o.workers) this.spawn();
    await Promise.all(this.slots.map(() => this.call({ name: '__warm', event: null }, this.o.timeoutMs)));
  }

  /** Round trip of an empty call: the pool's own overhead per invocation. */
  async ping(): Promise<void> {
    await this.call({ name: '__ping', event: null }, this.o.timeoutMs);
  }

  /** Test hook: an invocation that sleeps, to exercise timeouts. */
  async sleep(ms: number, timeoutMs = this.o.timeoutMs): Promise<void> {
    await this.call({ name: '__sleep', event: { ms } }, timeoutMs);
  }

  private call(request: Omit<WorkerRequest, 'id'>, timeoutMs: number): Promise<WorkerReply> {
    if (this.closed) return Promise.reject(new Error('local platform is closed'));
    return new Promise<WorkerReply>((resolve, reject) => {
      this.queue.push({ request: { ...request }, resolve, reject });
      this.pump(timeoutMs);
    });
  }

  private pump(timeoutMs: number): void {
    while (this.running < this.o.concurrency && this.queue.length > 0) {
      let slot = this.slots.find((s) => !s.busy);
      if (!slot) {
        if (this.slots.length >= this.o.workers) return;
        slot = this.spawn();
      }
      const job = this.queue.shift()!;
      this.dispatch(slot, job, timeoutMs);
    }
  }

  private dispatch(slot: Slot, job: Job, timeoutMs: number): void {
    slot.busy = true;
    this.running++;
    const id = this.nextId++;
    const { worker } = slot;
    const finish = (err: Error | null, reply?: WorkerReply) => {
      clearTimeout(timer);
      worker.off('message', onMessage);
      worker.off('error', onError);
      worker.off('exit', onExit);
      this.running--;
      if (err) this.replace(slot);
      else slot.busy = false;
      if (err) job.reject(err);
      else job.resolve(reply!);
      this.pump(timeoutMs);
    };
    const onMessage = (reply: WorkerReply) => { if (reply.id === id) finish(null, reply); };
    const onError = (e: Error) => finish(new TransientError(`function instance crashed: ${e.message}`));
    const onExit = (code: number) => finish(new TransientError(`function instance exited with code ${code}`));
    const timer = setTimeout(() => finish(new TransientError(`timed out after ${timeoutMs} ms; the instance was terminated and replaced`)), timeoutMs);
    worker.on('message', onMessage);
    worker.once('error', onError);
    worker.once('exit', onExit);
    worker.postMessage({ ...job.request, id } satisfies WorkerRequest);
  }

  async invoke<N extends FunctionName>(name: N, event: FunctionEvents[N]): Promise<FunctionResults[N]> {
    let lastError: Error | undefined;
    for (let attempt = 1; attempt <= this.o.attempts; attempt++) {
      if (attempt > 1) {
        this.retries++;
        await new Promise((r) => setTimeout(r, this.o.backoffMs * 2 ** (attempt - 2)));
      }
      const t = performance.now();
      let reply: WorkerReply | undefined;
      try {
        reply = await this.call({ name, event }, this.o.timeoutMs);
      } catch (err) {
        lastError = err as Error;
      }
      const durationMs = performance.now() - t;
      if (reply) {
        if (reply.coldStart) this.coldStarts++;
        else this.warmStarts++;
      }
      const ok = reply?.ok === true;
      this.records.push({ name, durationMs, memoryMb: this.o.memoryMb, coldStart: reply?.coldStart ?? false, ok, attempts: attempt });
      if (ok) return reply!.result as FunctionResults[N];
      if (reply) lastError = TRANSIENT.test(reply.error ?? '') ? new TransientError(reply.error) : new Error(reply.error);
      if (!(lastError instanceof TransientError) || this.closed) break;
    }
    throw new Error(`function ${name} failed: ${lastError?.message}`);
  }

  metrics(): PlatformMetrics {
    const failures = this.records.filter((r) => !r.ok).length;
    return {
      invocations: this.records.length,
      failures,
      retries: this.retries,
      coldStarts: this.coldStarts,
      warmStarts: this.warmStarts,
      billedMs: this.records.reduce((s, r) => s + Math.ceil(r.durationMs), 0),
      estimatedCostUsd: lambdaCost(this.records, this.o.prices),
    };
  }

  /** Every invocation so far (for benchmarks' cost break-downs). */
  invocations(): readonly InvocationRecord[] {
    return this.records;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const job of this.queue.splice(0)) job.reject(new Error('local platform closed'));
    await Promise.all(this.slots.splice(0).map((s) => s.worker.terminate()));
  }
}
