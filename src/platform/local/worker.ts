import { existsSync, writeFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import { parentPort, workerData } from 'node:worker_threads';
import { isTransient, oneLine } from '../../functions/errors.ts';
import type { FunctionName } from '../../functions/events.ts';
import type { WarmModel } from '../platform.ts';
import { handle } from '../../functions/handlers.ts';
import { initFunctionBackend, modelFor } from '../../functions/runtime.ts';
import { heapNow } from './heap.ts';
import type { InstanceMemory, TestHooks, WorkerReady, WorkerReply, WorkerRequest } from './protocol.ts';

/** A function instance: runs one invocation at a time; models and connections stay warm. */
const port = parentPort;
if (!port) throw new Error('src/platform/local/worker.ts runs as a worker thread of the local platform');
const testHooks = (workerData as { testHooks?: boolean } | undefined)?.testHooks === true;

async function testHook(h: TestHooks): Promise<void> {
  if (h.startedFile !== undefined) writeFileSync(h.startedFile, 'started');
  if (h.exitOnceFile !== undefined && !existsSync(h.exitOnceFile)) {
    writeFileSync(h.exitOnceFile, 'crashed once');
    process.exit(1);
  }
  if (h.exit !== undefined) process.exit(h.exit);
  if (h.allocateMb !== undefined) {
    // Small live objects on the JS heap (a typed array's bytes would live outside it).
    const keep: number[][] = [];
    for (let mb = 0; mb < h.allocateMb; mb++) keep.push(Array.from({ length: 131_072 }, (_, i) => i + mb + 0.5));
    (globalThis as { __kept?: unknown }).__kept = keep;
  }
  if (h.gateFile !== undefined) {
    while (!existsSync(h.gateFile)) await new Promise((r) => setTimeout(r, 5));
  }
  if (h.sleepMs !== undefined) {
    if (h.spin) {
      const until = Date.now() + h.sleepMs;
      while (Date.now() < until) { /* a CPU-bound hang: only terminate() stops it */ }
    } else {
      await new Promise((r) => setTimeout(r, h.sleepMs));
    }
  }
}

async function run(req: WorkerRequest): Promise<unknown> {
  switch (req.name) {
    case '__ping':
      return null;
    case '__memory': {
      // Collected first when the process runs with --expose-gc, so what is left is what stays.
      const collect = (globalThis as { gc?: () => void }).gc;
      collect?.();
      return { ...heapNow(), tensors: tf.memory().numTensors, collected: collect !== undefined } satisfies InstanceMemory;
    }
    case '__warm': {
      const backend = await initFunctionBackend();
      for (const m of (req.event as { models?: WarmModel[] } | null)?.models ?? []) await modelFor(m.model, m.samples);
      return backend;
    }
    default: {
      const hooks = (req.event as { __test?: TestHooks } | null)?.__test;
      if (testHooks && hooks) await testHook(hooks);
      return handle(req.name as FunctionName, req.event as never);
    }
  }
}

port.on('message', async (req: WorkerRequest) => {
  const t = performance.now();
  let reply: WorkerReply;
  try {
    const result = await run(req);
    reply = { id: req.id, ok: true, result, durationMs: performance.now() - t };
  } catch (err) {
    const message = oneLine(err instanceof Error ? err.message : String(err));
    reply = { id: req.id, ok: false, error: message, transient: isTransient(err), durationMs: performance.now() - t };
  }
  port.postMessage(reply);
});

port.postMessage({ ready: true } satisfies WorkerReady);
