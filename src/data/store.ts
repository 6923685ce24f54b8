import type { Redis } from '../tensor/redis-client.ts';
import { select, slice, type Dataset } from './dataset.ts';
import { batchRanges } from './shard.ts';

/** Where a peer keeps its data in its own Redis (inputs and labels as plain byte strings, see dataset.ts). */
export const DataKeys = {
  meta: 'data:meta',
  batchImages: (i: number) => `data:batch:${i}:x`,
  batchLabels: (i: number) => `data:batch:${i}:y`,
  validationImages: 'data:validation:x',
  validationLabels: 'data:validation:y',
  testImages: 'data:test:x',
  testLabels: 'data:test:y',
};

const bytes = (a: Uint8Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/**
 * Stores a peer's shard as batches; returns the number of batches. With `indices`, the shard is
 * those samples of `data`, gathered one batch at a time (no copy of the whole shard is made);
 * without, it is all of `data`.
 */
export async function storeBatches(client: Redis, data: Dataset, batchSize: number, indices?: ArrayLike<number>): Promise<number> {
  const count = indices ? indices.length : data.count;
  const ranges = batchRanges(count, batchSize);
  // Pipelined in groups so a 60k-sample shard goes in a few round trips without one huge reply.
  for (let g = 0; g < ranges.length; g += 64) {
    const tx = client.multi();
    for (const [k, r] of ranges.slice(g, g + 64).entries()) {
      const i = g + k;
      const b = indices ? select(data, Array.prototype.slice.call(indices, r.start, r.start + r.count) as number[]) : slice(data, r.start, r.count);
      tx.set(DataKeys.batchImages(i), bytes(b.inputs));
      tx.set(DataKeys.batchLabels(i), bytes(b.labels));
    }
    await tx.execAsPipeline();
  }
  return ranges.length;
}

/** Stores a whole held-out set (validation or test) under two keys. */
export async function storeSamples(client: Redis, d: Dataset, imagesKey: string, labelsKey: string): Promise<void> {
  await client.multi().set(imagesKey, bytes(d.inputs)).set(labelsKey, bytes(d.labels)).exec();
}

