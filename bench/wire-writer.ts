/**
 * One peer's writers for `bench round`'s wire figure, in its own thread as a bench peer is:
 * G connections to the peer's Redis, each writing a pre-made vector into a tensor that already
 * exists (PL.SETRANGE chunks, nothing summed). Messages: 'ready', then on each 'go' the ms the
 * G writes took together, then 'closed' on 'close'.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { closeRedis, connectRedis } from '../src/tensor/redis-client.ts';
import { ensureTensor, writeChunks } from '../src/tensor/transfer.ts';
import { makeGradients } from './gradients.ts';

export interface WireWriterData {
  url: string;
  length: number;
  writers: number;
}

async function main(d: WireWriterData): Promise<void> {
  const vectors = makeGradients(d.length, d.writers);
  const clients = await Promise.all(vectors.map(() => connectRedis({ url: d.url })));
  await Promise.all(clients.map((c, k) => ensureTensor(c, `wire:${k}`, d.length)));
  parentPort!.on('message', async (m: string) => {
    if (m === 'go') {
      const t = performance.now();
      await Promise.all(clients.map((c, k) => writeChunks(c, `wire:${k}`, 0, vectors[k])));
      parentPort!.postMessage(performance.now() - t);
    } else if (m === 'close') {
      await Promise.all(clients.map(closeRedis));
      parentPort!.postMessage('closed');
    }
  });
  parentPort!.postMessage('ready');
}

if (parentPort && workerData) void main(workerData as WireWriterData);
