/**
 * Loads and shards one data source, in its own process (run by bench/data.ts):
 *   node bench/data-one.mjs SOURCE PEERS
 * prints one JSON line: the resident memory before loading (the idle process), the load and
 * shard times, the peak resident memory, and the dataset's bytes as stored.
 */
import { select } from '../src/data/dataset.ts';
import { splitData } from '../src/data/shard.ts';
import { loadSource, preloadSource } from '../src/data/sources.ts';

const [source, peersArg] = process.argv.slice(2);
const peers = Number(peersArg);
const idleRssMb = process.memoryUsage().rss / 2 ** 20;
const t0 = performance.now();
const options = { labelColumn: 'label', testFraction: 0, seed: 42, syntheticSize: 4096 };
// As a training run loads it: an image folder decoded ahead, in a worker (preloadSource).
await preloadSource(source!, options);
const data = loadSource(source!, options);
const t1 = performance.now();
// As the peers of a local run store their shards (storeBatches): the same seeded split, each
// shard gathered one batch of 64 at a time.
const split = splitData(data.train.count, { seed: 42, peers, validation: 0 });
let stored = 0;
for (const s of split.shards) {
  for (let b = 0; b < s.length; b += 64) stored += select(data.train, s.subarray(b, b + 64)).inputs.length;
}
const t2 = performance.now();
const bytes = data.train.inputs.length + (data.test?.inputs.length ?? 0);
process.stdout.write(`${JSON.stringify({
  samples: data.train.count + (data.test?.count ?? 0), shape: data.train.spec.shape, datasetMb: bytes / 2 ** 20, shardedMb: stored / 2 ** 20,
  loadMs: t1 - t0, shardMs: t2 - t1, idleRssMb, peakRssMb: process.resourceUsage().maxRSS / 1024,
})}\n`);
