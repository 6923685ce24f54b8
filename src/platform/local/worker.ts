import { parentPort } from 'node:worker_threads';
import { handle } from '../../functions/handlers.ts';
import type { FunctionName } from '../../functions/events.ts';
import { initBackend } from '../../model/backend.ts';
import { takeColdStart } from '../../functions/runtime.ts';

/** Messages between the pool and a worker. */
export interface WorkerRequest {
  id: number;
  /** A function name, or an internal call of the pool: '__warm' (load the backend), '__sleep' (tests). */
  name: FunctionName | '__warm' | '__sleep' | '__ping';
  event: unknown;
}
export interface WorkerReply {
  id: number;
  ok: boolean;
  result?: unknown;
  error?: string;
  coldStart: boolean;
}

async function run(req: WorkerRequest): Promise<unknown> {
  switch (req.name) {
    case '__ping':
      return null;
    case '__warm':
      return initBackend(process.env.PEERLESS_BACKEND as 'auto' | undefined);
    case '__sleep':
      // Test hook: a function that hangs, to exercise the pool's timeout.
      await new Promise((r) => setTimeout(r, (req.event as { ms: number }).ms));
      return null;
    default:
      return handle(req.name, req.event as never);
  }
}

parentPort!.on('message', async (req: WorkerRequest) => {
  const coldStart = req.name === '__warm' || req.name === '__ping' ? false : takeColdStart();
  try {
    const result = await run(req);
    parentPort!.postMessage({ id: req.id, ok: true, result, coldStart } satisfies WorkerReply);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    parentPort!.postMessage({ id: req.id, ok: false, error: message.split('\n')[0], coldStart } satisfies WorkerReply);
  }
});
