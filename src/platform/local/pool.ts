import { Worker } from 'node:worker_threads';
import type { WorkerReady, WorkerReply, WorkerRequest } from './protocol.ts';

const ENTRY = new URL('./worker-entry.mjs', import.meta.url);

export interface PoolOptions {
  /** Worker threads at most (function instances). */
  size: number;
  /** Jobs running at once (<= size); the rest wait in FIFO order. */
  concurrency: number;
  /** V8 heap limit per worker, MB (wasm memory is outside it). */
  heapMb: number;
  /** Limit for a worker to load its modules, separate from the invocation timeout. */
  initTimeoutMs: number;
  testHooks: boolean;
  /** Variables added to each worker's environment (the Redis password functions use). */
  env?: Record<string, string>;
}

export interface PoolJob {
  name: string;
  event: unknown;
  timeoutMs: number;
}

export interface PoolOutcome {
  reply: WorkerReply;
  /** The job ran on a fresh instance (its first job). */
  cold: boolean;
  /** Module loading of a fresh instance, ms (0 when warm). */
  initMs: number;
}

/** A job that got no reply: the instance timed out, crashed, ran out of memory, or the pool closed. */
export class PoolFailure extends Error {
  override readonly name = 'PoolFailure';
  constructor(
    message: string,
    readonly kind: 'timeout' | 'crash' | 'oom' | 'closed' | 'abandoned',
    readonly cold: boolean,
    /** Time the instance was held, ms (billed). */
    readonly elapsedMs: number,
  ) {
    super(message);
  }
  /** A new instance may succeed where this one died or hung; an OOM, a closed pool or a caller gone would not. */
  get transient(): boolean {
    return this.kind === 'timeout' || this.kind === 'crash';
  }
}

interface Slot {
  worker: Worker;
  ready: Promise<number>;
  busy: boolean;
  jobs: number;
  gone: boolean;
  /** Settles the running job when the worker dies. */
  onDeath?: (err: PoolFailure) => void;
}

interface Queued {
  job: PoolJob;
  /** Runs on this instance only (an internal probe of each instance), else on any. */
  slot?: Slot;
  /** The caller stopped waiting. */
  signal?: AbortSignal;
  resolve(o: PoolOutcome): void;
  reject(e: Error): void;
}

/**
 * Worker threads as serverless function instances: started on demand up to `size`, kept
 * warm between jobs, one job each at a time, jobs in FIFO order past the concurrency limit.
 * A job past its timeout terminates its worker (a hung function cannot be interrupted any
 * other way); a dead worker is replaced by a fresh one.
 */
export class WorkerPool {
  private readonly slots: Slot[] = [];
  private readonly queue: Queued[] = [];
  private running = 0;
  private nextId = 1;
  private closed = false;
  /** Workers started so far (each start is a cold instance). */
  started = 0;

  constructor(private readonly o: PoolOptions) {}

  /**
   * Runs `job` on a free instance. `signal`: the caller no longer waits; a queued job leaves
   * the queue, a running one's instance is terminated and replaced (nothing else stops it).
   */
  run(job: PoolJob, signal?: AbortSignal): Promise<PoolOutcome> {
    if (this.closed) return Promise.reject(new PoolFailure(`${job.name}: the local platform is closed`, 'closed', false, 0));
    if (signal?.aborted) return Promise.reject(new PoolFailure(`${job.name}: abandoned by the caller before it ran`, 'abandoned', false, 0));
    return new Promise((resolve, reject) => {
      const q: Queued = { job, resolve, reject, ...(signal ? { signal } : {}) };
      signal?.addEventListener('abort', () => {
        const i = this.queue.indexOf(q);
        if (i < 0) return;
        this.queue.splice(i, 1);
        reject(new PoolFailure(`${job.name}: abandoned by the caller before it ran`, 'abandoned', false, 0));
      }, { once: true });
      this.queue.push(q);
      this.pump();
    });
  }

  /**
   * Runs `job` once on every live instance, each when it is free (after the jobs queued
   * before it there), e.g. an internal probe of each instance's memory.
   */
  eachInstance(job: PoolJob): Promise<PoolOutcome[]> {
    if (this.closed) return Promise.reject(new PoolFailure(`${job.name}: the local platform is closed`, 'closed', false, 0));
    const runs = this.slots.filter((s) => !s.gone).map((slot) => new Promise<PoolOutcome>((resolve, reject) => {
      this.queue.push({ job, slot, resolve, reject });
    }));
    this.pump();
    return Promise.all(runs);
  }

  /** Starts workers until `size` are alive, and waits until they load. */
  async fill(): Promise<void> {
    while (this.slots.length < this.o.size) this.spawn();
    await Promise.all(this.slots.map((s) => s.ready.catch(() => 0)));
  }

  /** Thread ids of the live workers (tests check that a killed worker was replaced). */
  threadIds(): number[] {
    return this.slots.map((s) => s.worker.threadId);
  }

  get queued(): number {
    return this.queue.length;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const q of this.queue.splice(0)) q.reject(new PoolFailure(`${q.job.name}: the local platform closed before it ran`, 'closed', false, 0));
    await Promise.all(this.slots.splice(0).map((s) => this.kill(s)));
  }

  private spawn(): Slot {
    const t0 = performance.now();
    const worker = new Worker(ENTRY, {
      env: { ...process.env, ...this.o.env },
      resourceLimits: { maxOldGenerationSizeMb: this.o.heapMb },
      workerData: { testHooks: this.o.testHooks },
    });
    // The pool must not keep the process alive: close() ends workers, an idle CLI may exit.
    worker.unref();
    this.started++;
    const slot: Slot = { worker, busy: false, jobs: 0, gone: false, ready: Promise.resolve(0) };
    slot.ready = new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new PoolFailure(`function instance did not start within ${this.o.initTimeoutMs} ms`, 'timeout', true, this.o.initTimeoutMs)), this.o.initTimeoutMs);
      worker.on('message', function first(m: WorkerReady) {
        if (m.ready !== true) return;
        worker.off('message', first);
        clearTimeout(timer);
        resolve(performance.now() - t0);
      });
      worker.once('exit', () => { clearTimeout(timer); reject(new PoolFailure('function instance exited while starting', 'crash', true, performance.now() - t0)); });
    });
    slot.ready.catch(() => {});
    let lastError: Error | undefined;
    worker.on('error', (e) => { lastError = e; });
    worker.once('exit', (code) => {
      slot.gone = true;
      this.remove(slot);
      const oom = (lastError as NodeJS.ErrnoException | undefined)?.code === 'ERR_WORKER_OUT_OF_MEMORY';
      const why = this.closed
        ? new PoolFailure('the local platform closed during the call', 'closed', false, 0)
        : oom
        ? new PoolFailure(`function instance ran out of memory (heap limit ${this.o.heapMb} MB)`, 'oom', false, 0)
        : new PoolFailure(`function instance crashed (${lastError ? oneLineOf(lastError) : `exit code ${code}`})`, 'crash', false, 0);
      slot.onDeath?.(why);
      // Replace the dead instance, so the pool stays at strength (it starts cold).
      if (!this.closed && this.slots.length < this.o.size) this.spawn();
      this.pump();
    });
    this.slots.push(slot);
    return slot;
  }

  private remove(slot: Slot): void {
    const i = this.slots.indexOf(slot);
    if (i >= 0) this.slots.splice(i, 1);
  }

  private async kill(slot: Slot): Promise<void> {
    this.remove(slot);
    if (!slot.gone) {
      slot.gone = true;
      await slot.worker.terminate();
    }
  }

  /** Starts queued jobs on free instances, in queue order; a job bound to a busy instance waits for it. */
  private pump(): void {
    let i = 0;
    while (!this.closed && this.running < this.o.concurrency && i < this.queue.length) {
      const q = this.queue[i];
      if (q.slot?.gone) {
        this.queue.splice(i, 1);
        q.reject(new PoolFailure(`${q.job.name}: function instance ended before the call`, 'crash', false, 0));
        continue;
      }
      const slot = q.slot ? (q.slot.busy ? undefined : q.slot) : this.freeSlot();
      if (!slot) { i++; continue; }
      this.queue.splice(i, 1);
      void this.dispatch(slot, q);
    }
  }

  /** An idle instance, or a new one while the pool is below its size. */
  private freeSlot(): Slot | undefined {
    const idle = this.slots.find((s) => !s.busy && !s.gone);
    if (idle) return idle;
    return this.slots.length < this.o.size ? this.spawn() : undefined;
  }

  private async dispatch(slot: Slot, q: Queued): Promise<void> {
    slot.busy = true;
    this.running++;
    const cold = slot.jobs === 0;
    slot.jobs++;
    const t0 = performance.now();
    let initMs = 0;
    const done = (err: PoolFailure | null, reply?: WorkerReply) => {
      slot.onDeath = undefined;
      this.running--;
      slot.busy = false;
      if (err) q.reject(err);
      else q.resolve({ reply: reply!, cold, initMs });
      this.pump();
    };
    try {
      initMs = cold ? await slot.ready : 0;
    } catch (err) {
      await this.kill(slot);
      return done(err as PoolFailure);
    }
    if (slot.gone) {
      return done(new PoolFailure(`${q.job.name}: function instance crashed before the call`, 'crash', cold, performance.now() - t0));
    }
    const id = this.nextId++;
    const { worker } = slot;
    const prefix = q.job.name.startsWith('__') ? '' : `${q.job.name}: `;
    let settled = false;
    const settle = (err: PoolFailure | null, reply?: WorkerReply) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      q.signal?.removeEventListener('abort', abandon);
      worker.off('message', onMessage);
      done(err, reply);
    };
    const onMessage = (m: WorkerReply | WorkerReady) => {
      if ('id' in m && m.id === id) settle(null, m);
    };
    // The invocation's clock starts once the instance is up: like Lambda, init is not the handler's time.
    const started = performance.now();
    const end = (message: string, kind: PoolFailure['kind']) => {
      const elapsed = performance.now() - started;
      // Replace at once (not on 'exit', which comes later): the pool stays at strength.
      this.remove(slot);
      if (!this.closed && this.slots.length < this.o.size) this.spawn();
      void this.kill(slot);
      settle(new PoolFailure(`${prefix}${message} (instance terminated and replaced)`, kind, cold, elapsed));
    };
    const timer = setTimeout(() => end(`timed out after ${q.job.timeoutMs} ms`, 'timeout'), q.job.timeoutMs);
    const abandon = () => end('abandoned by the caller', 'abandoned');
    // Gone while its instance was starting: the instance stays, the job never ran.
    if (q.signal?.aborted) return settle(new PoolFailure(`${prefix}abandoned by the caller before it ran`, 'abandoned', cold, 0));
    q.signal?.addEventListener('abort', abandon, { once: true });
    slot.onDeath = (why) => settle(new PoolFailure(`${prefix}${why.message}`, why.kind, cold, performance.now() - started));
    worker.on('message', onMessage);
    worker.postMessage({ id, name: q.job.name, event: q.job.event } satisfies WorkerRequest);
  }
}

function oneLineOf(e: Error): string {
  return e.message.split('\n')[0];
}
