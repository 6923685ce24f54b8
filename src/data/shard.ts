import { permutation } from './random.ts';

export interface DataSplit {
  /** Held-out sample indices for convergence checks. */
  validation: Uint32Array;
  /** One list of training sample indices per peer. */
  shards: Uint32Array[];
}

/**
 * A deterministic, seeded split of `count` samples: a shuffled order, the first
 * `validation` samples held out, then `trainSamples` (0 = all the rest) dealt into `peers`
 * contiguous shards whose sizes differ by at most one. Every peer computes the same split
 * from the same seed, so no peer has to send data to another.
 */
export function splitData(count: number, o: { seed: number; peers: number; validation: number; trainSamples?: number }): DataSplit {
  if (!Number.isInteger(o.peers) || o.peers < 1) throw new Error(`peers must be a positive integer, got ${o.peers}`);
  if (o.validation < 0 || o.validation >= count) throw new Error(`validation size ${o.validation} must be below the ${count} samples`);
  const order = permutation(count, o.seed);
  const validation = order.slice(0, o.validation);
  const available = count - o.validation;
  const train = o.trainSamples && o.trainSamples > 0 ? Math.min(o.trainSamples, available) : available;
  if (train < o.peers) throw new Error(`${train} training samples cannot be shared by ${o.peers} peers`);
  const shards: Uint32Array[] = [];
  const base = Math.floor(train / o.peers), extra = train % o.peers;
  let at = o.validation;
  for (let p = 0; p < o.peers; p++) {
    const n = base + (p < extra ? 1 : 0);
    shards.push(order.slice(at, at + n));
    at += n;
  }
  return { validation, shards };
}

/**
 * Batches of a shard: consecutive ranges of `batchSize`; the last one holds the remainder
 * (smaller), so no sample is dropped.
 */
export function batchRanges(size: number, batchSize: number): { start: number; count: number }[] {
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`batch size must be a positive integer, got ${batchSize}`);
  const out: { start: number; count: number }[] = [];
  for (let start = 0; start < size; start += batchSize) out.push({ start, count: Math.min(batchSize, size - start) });
  return out;
}
