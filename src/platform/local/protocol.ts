/**
 * Messages between the pool and a worker thread. Internal calls start with "__" and are
 * never function names: `__ping` (round-trip overhead), `__warm` (load the backend and,
 * optionally, build models ahead of the first invocation), `__memory` (the instance's heap,
 * after a full collection when the process runs with --expose-gc).
 */
export interface WorkerRequest {
  id: number;
  name: string;
  event: unknown;
}

export interface WorkerReply {
  id: number;
  ok: boolean;
  result?: unknown;
  /** One line naming the function and the problem. */
  error?: string;
  /** The failure may pass on a retry (a refused or reset connection). */
  transient?: boolean;
  /** The handler's own time, measured in the worker: what a serverless platform bills. */
  durationMs: number;
}

/** Posted once by a worker when its modules are loaded and it takes requests. */
export interface WorkerReady {
  ready: true;
}

/**
 * Test-only behaviour a gradient/evaluate event can ask for, honoured only by workers of a
 * pool created with `testHooks: true`: a hanging function (`sleepMs`, `spin` for a CPU-bound
 * hang that only termination stops), a crash (`exit`), a crash on the first try only
 * (`exitOnceFile`: exits if the file does not exist yet, after creating it), a function
 * that outgrows the worker's heap limit (`allocateMb`), a function that waits until a file
 * exists (`gateFile`), so a test decides when it ends, and one that says it started
 * (`startedFile`).
 */
export interface TestHooks {
  /** Written when the call starts, so a test knows it runs. */
  startedFile?: string;
  gateFile?: string;
  allocateMb?: number;
  sleepMs?: number;
  spin?: boolean;
  exit?: number;
  exitOnceFile?: string;
}

/** One function instance's memory, as `__memory` measures it in the worker. */
export interface InstanceMemory {
  /** Live bytes of the instance's V8 heap. */
  heapUsedBytes: number;
  /** Of which compiled code and its metadata (grows while the JIT warms up, is no leak). */
  codeBytes: number;
  /** Memory outside the heap held by its objects (typed arrays, wasm buffers), bytes. */
  externalBytes: number;
  /** TensorFlow.js tensors alive in the instance (a leak of them is TF.js's classic leak). */
  tensors: number;
  /** A full collection ran before the measure (the process has --expose-gc). */
  collected: boolean;
}
