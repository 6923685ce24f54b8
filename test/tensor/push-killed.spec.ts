/**
 * Chunked pushes count once and whole (issue 8's acceptance): a writer in a real worker
 * thread is killed after half its chunks, its push is retried in full under a new attempt,
 * and the average's bytes equal a clean run's. Real redis-server with the module.
 */
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedisServer, type RedisServer } from '../../src/cluster/redis-server.ts';
import { exactMeanOf } from '../../src/tensor/exact-sum.ts';
import { closeRedis, connectRedis, type Redis } from '../../src/tensor/redis-client.ts';
import { pushChunks, type PushTarget } from '../../src/tensor/transfer.ts';
import { randomTensor } from '../module/helpers.ts';

let server: RedisServer;
let client: Redis;
beforeAll(async () => {
  server = await startRedisServer();
  client = await connectRedis({ url: server.url });
});
afterAll(async () => {
  await closeRedis(client);
  await server.stop();
});

const N = 10_000, CHUNK = 1_000;
const grads = [randomTensor(N, 1, 0.01), randomTensor(N, 2, 0.01), randomTensor(N, 3, 0.01)];
const target = (sum: string, id: string, round = 0): PushTarget => ({ sumKey: sum, avgKey: `${sum}:avg`, contributionId: id, expected: 3, round });
const avgBytes = async (sum: string) => (await client.sendCommand(['GET', `${sum}:avg`], { typeMapping: { [36]: Buffer } })) as unknown as Buffer;

/** Starts a writer thread that hangs after `stopAfter` chunks; resolves once it is there. */
async function writerStoppedAfter(sum: string, id: string, values: Float32Array, stopAfter: number): Promise<{ worker: Worker; goOn: () => Promise<unknown> }> {
  const gate = new SharedArrayBuffer(4);
  const worker = new Worker(new URL('./push-writer.mjs', import.meta.url), {
    workerData: { url: server.url, target: target(sum, id), values, attempt: 'first', chunkElements: CHUNK, stopAfter, gate },
  });
  await new Promise<void>((resolve, reject) => {
    worker.once('message', (m) => (m === 'stopped' ? resolve() : reject(new Error(`writer ${JSON.stringify(m)} without stopping`))));
    worker.once('error', reject);
  });
  const goOn = () => {
    const result = new Promise((resolve, reject) => { worker.once('message', resolve); worker.once('error', reject); });
    Atomics.store(new Int32Array(gate), 0, 1);
    Atomics.notify(new Int32Array(gate), 0);
    return result;
  };
  return { worker, goOn };
}

describe('pushChunks', () => {
  it('a clean push of three gradients averages them exactly', async () => {
    const results = await Promise.all(grads.map((g, j) => pushChunks(client, target('clean', `b${j}`), g, `a${j}`, { chunkElements: CHUNK })));
    expect(results.map((r) => r.chunks)).toEqual([10, 10, 10]);
    expect(results.filter((r) => r.done).length).toBeGreaterThanOrEqual(1);
    expect((await avgBytes('clean')).equals(Buffer.from(exactMeanOf(grads).buffer))).toBe(true);
  });

  it('a writer killed after half its chunks, then retried in full: counted once, the same bytes as a clean run', async () => {
    const { worker } = await writerStoppedAfter('killed', 'b0', grads[0], 5);
    await worker.terminate();
    // The killed attempt's five chunks are in the sum, staged; the retry sends all ten again.
    expect(await pushChunks(client, target('killed', 'b0'), grads[0], 'retry', { chunkElements: CHUNK })).toMatchObject({ count: 1, done: false });
    await pushChunks(client, target('killed', 'b1'), grads[1], 'a1', { chunkElements: CHUNK });
    expect(await pushChunks(client, target('killed', 'b2'), grads[2], 'a2', { chunkElements: CHUNK })).toMatchObject({ count: 3, done: true });
    expect((await avgBytes('killed')).equals(Buffer.from(exactMeanOf(grads).buffer))).toBe(true);
  });

  it('a retry that races a live first attempt: whichever completes first counts, once', async () => {
    // The first attempt computed other bytes (a backend that is not deterministic): only one
    // attempt's bytes may count, never a mix.
    const { worker, goOn } = await writerStoppedAfter('race', 'b0', randomTensor(N, 99, 0.01), 5);
    try {
      await pushChunks(client, target('race', 'b0'), grads[0], 'retry', { chunkElements: CHUNK });
      // The first attempt wakes and sends its other five chunks: acknowledged, not counted.
      expect(await goOn()).toMatchObject({ count: 1, done: false, chunks: 10 });
      await pushChunks(client, target('race', 'b1'), grads[1], 'a1', { chunkElements: CHUNK });
      await pushChunks(client, target('race', 'b2'), grads[2], 'a2', { chunkElements: CHUNK });
      expect((await avgBytes('race')).equals(Buffer.from(exactMeanOf(grads).buffer))).toBe(true);
    } finally {
      await worker.terminate();
    }
  });
});
