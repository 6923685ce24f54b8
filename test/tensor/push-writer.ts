/**
 * A gradient writer in a worker thread, for push-killed.spec.ts: pushes a vector with
 * pushChunks one chunk at a time and, after `stopAfter` chunks, tells the test and hangs, so
 * the test can kill it at that exact point (worker.terminate()) and retry the push in full,
 * or let it go on after a retry (a race).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { connectRedis } from '../../src/tensor/redis-client.ts';
import { pushChunks, type PushTarget } from '../../src/tensor/transfer.ts';

const { url, target, values, attempt, chunkElements, stopAfter, gate } = workerData as {
  url: string; target: PushTarget; values: Float32Array; attempt: string; chunkElements: number; stopAfter: number;
  /** Int32 flag: the writer waits while it is 0 (the test sets it to let the writer go on). */
  gate: SharedArrayBuffer;
};
const client = await connectRedis({ url });
const send = client.sendCommand.bind(client);
let sent = 0;
client.sendCommand = (async (...args: Parameters<typeof send>) => {
  if (sent++ === stopAfter) {
    parentPort!.postMessage('stopped');
    Atomics.wait(new Int32Array(gate), 0, 0); // until killed, or let go on
  }
  return send(...args);
}) as typeof client.sendCommand;
const result = await pushChunks(client, target, values, attempt, { chunkElements, maxInFlightBytes: chunkElements * 4 });
parentPort!.postMessage(result);
