import { availableParallelism } from 'node:os';
import { select } from '../src/data/dataset.ts';
import { loadMnist } from '../src/data/mnist.ts';
import { splitData } from '../src/data/shard.ts';
import { storeBatches } from '../src/data/store.ts';
import type { GradientEvent } from '../src/functions/events.ts';
import { handle } from '../src/functions/handlers.ts';
import { startRedisServer } from '../src/cluster/redis-server.ts';
import { prepareModel } from '../src/cluster/training-setup.ts';
import { parseTrainingConfig } from '../src/config/training.ts';
import { LocalPlatform } from '../src/platform/local/local-platform.ts';
import type { FunctionPlatform } from '../src/platform/platform.ts';
import { K } from '../src/peer/net/keys.ts';
import { gradientEvent } from '../src/peer/events.ts';
import { averageWritten, InDbTensorStore } from '../src/tensor/in-db.ts';
import { closeRedis, connectRedis, type Redis } from '../src/tensor/redis-client.ts';

/** r5.large on-demand (us-east-1), the one machine's price when none is given. */
export const R5_LARGE_USD_PER_HOUR = 0.126;

export interface ServerlessBenchOptions {
  model: string;
  width: number;
  batchSizes: number[];
  samples: number;
  instanceUsdPerHour: number;
  /** A fresh platform (the "with serverless" side); local pools are also built per concurrency. */
  platform: () => Promise<FunctionPlatform>;
  /** Measure the speedup at concurrency 1..workers (local platform only). */
  concurrencySweep: boolean;
  onProgress?: (done: number, total: number, what: string) => void;
}

export interface ServerlessRow {
  batchSize: number;
  batches: number;
  wosMs: number;
  wsMs: number;
  speedup: number;
  wosCostUsd: number;
  wsCostUsd: number;
  /** Largest difference between the two averages (0: the sums are exact and order-free). */
  maxAbsDiff: number;
}

export interface ServerlessReport {
  benchmark: 'serverless';
  model: string;
  parameters: number;
  samples: number;
  cores: number;
  platform: string;
  rows: ServerlessRow[];
  /** Speedup over concurrency 1 at the smallest batch size (local platform). */
  concurrency: { concurrency: number; wsMs: number; speedup: number }[];
  /** The local pool's own cost per warm invocation, ms (empty call round trip). */
  localOverheadMs: number | null;
  paper: { batchSize: number; batches: number; wosS: number; wsS: number; wosCostUsd: number; wsCostUsd: number }[];
}

const PAPER_TABLE1 = [
  { batchSize: 64, batches: 235, wosS: 394.8, wsS: 10.5, wosCostUsd: 0.01017, wsCostUsd: 0.05435 },
  { batchSize: 128, batches: 118, wosS: 330.4, wsS: 12.9, wosCostUsd: 0.00851, wsCostUsd: 0.03451 },
  { batchSize: 512, batches: 30, wosS: 278.4, wsS: 28.1, wosCostUsd: 0.00717, wsCostUsd: 0.03069 },
  { batchSize: 1024, batches: 15, wosS: 258, wsS: 47.8, wosCostUsd: 0.00665, wsCostUsd: 0.03567 },
];

/** One round of every key prefix: the module marks "<avg>:round" once its average is whole. */
const ROUND = 1;

function events(url: string, layoutHash: string, model: { name: string; width: number }, batches: number, prefix: string): GradientEvent[] {
  return Array.from({ length: batches }, (_, i) => gradientEvent({ redis: { url }, model, layoutHash }, i, { sumKey: `${prefix}:sum`, avgKey: `${prefix}:avg`, expected: batches, round: ROUND }));
}

async function withServerless(platform: FunctionPlatform, evs: GradientEvent[]): Promise<{ ms: number; costUsd: number }> {
  const before = platform.metrics().estimatedCostUsd;
  const t = performance.now();
  await Promise.all(evs.map((e) => platform.invoke('gradient', e)));
  return { ms: performance.now() - t, costUsd: platform.metrics().estimatedCostUsd - before };
}

/**
 * The paper's Table 1 for one peer's shard: every batch's gradient computed one after
 * another in this process (without serverless: the same handler code, called directly) vs
 * every batch an invocation on the platform, all at once (with serverless). Both sides read
 * the same parameters and batches from the same redis-server and push their gradients into
 * it, so the only difference is the parallel offload.
 */
export async function runServerlessBench(o: ServerlessBenchOptions): Promise<ServerlessReport> {
  const config = parseTrainingConfig({ model: { name: o.model, width: o.width }, seed: 1 });
  const server = await startRedisServer();
  let client: Redis | undefined;
  let platform: FunctionPlatform | undefined;
  try {
    client = await connectRedis({ url: server.url });
    const store = new InDbTensorStore(client);
    const model = await prepareModel(config);
    await store.set(K.params, model.initialParams);
    await client.set(K.layout, model.info.layoutHash);
    const all = loadMnist('train');
    const split = splitData(all.count, { seed: 1, peers: Math.max(1, Math.round(all.count / o.samples)), validation: 0 });
    const shard = select(all, split.shards[0].subarray(0, o.samples));
    const modelRef = { name: o.model, width: o.width };

    platform = await o.platform();
    const localOverheadMs = platform instanceof LocalPlatform ? await measurePing(platform) : null;
    const steps = o.batchSizes.length * 2 + (o.concurrencySweep ? availableParallelism() : 0);
    let done = 0;
    const rows: ServerlessRow[] = [];
    // Warm this process's own backend and model before timing, as the pool's workers are.
    await storeBatches(client, select(shard, [0, 1]), 2);
    await handle('gradient', events(server.url, model.info.layoutHash, modelRef, 1, 'warm')[0]);

    for (const b of o.batchSizes) {
      const batches = await storeBatches(client, shard, b);
      o.onProgress?.(done++, steps, `batch ${b}: without serverless`);
      const t = performance.now();
      for (const e of events(server.url, model.info.layoutHash, modelRef, batches, `wos${b}`)) await handle('gradient', e);
      const wosMs = performance.now() - t;
      o.onProgress?.(done++, steps, `batch ${b}: with serverless`);
      const ws = await withServerless(platform, events(server.url, model.info.layoutHash, modelRef, batches, `ws${b}`));
      // A long average is written after the last push returns: read each once it is whole.
      for (const k of [`wos${b}:avg`, `ws${b}:avg`]) await averageWritten(client, k, ROUND, 120_000);
      const [a, c] = await Promise.all([store.get(`wos${b}:avg`), store.get(`ws${b}:avg`)]);
      let maxAbsDiff = 0;
      for (let i = 0; i < a.length; i++) maxAbsDiff = Math.max(maxAbsDiff, Math.abs(a[i] - c[i]));
      rows.push({
        batchSize: b, batches, wosMs, wsMs: ws.ms, speedup: wosMs / ws.ms,
        wosCostUsd: (wosMs / 3_600_000) * o.instanceUsdPerHour, wsCostUsd: ws.costUsd, maxAbsDiff,
      });
    }

    const concurrency: ServerlessReport['concurrency'] = [];
    if (o.concurrencySweep && platform instanceof LocalPlatform) {
      const b = Math.min(...o.batchSizes);
      const batches = await storeBatches(client, shard, b);
      for (let c = 1; c <= availableParallelism(); c++) {
        o.onProgress?.(done++, steps, `concurrency ${c}`);
        const pool = new LocalPlatform({ workers: c });
        await pool.warm();
        try {
          const r = await withServerless(pool, events(server.url, model.info.layoutHash, modelRef, batches, `c${c}`));
          concurrency.push({ concurrency: c, wsMs: r.ms, speedup: (concurrency[0]?.wsMs ?? r.ms) / r.ms });
        } finally {
          await pool.close();
        }
      }
    }
    o.onProgress?.(steps, steps, 'done');
    return {
      benchmark: 'serverless', model: o.model, parameters: model.info.length, samples: shard.count, cores: availableParallelism(),
      platform: platform.kind, rows, concurrency, localOverheadMs, paper: PAPER_TABLE1,
    };
  } finally {
    await platform?.close();
    if (client) await closeRedis(client);
    await server.stop();
  }
}

async function measurePing(p: LocalPlatform): Promise<number> {
  for (let i = 0; i < 50; i++) await p.ping();
  const n = 500, t = performance.now();
  for (let i = 0; i < n; i++) await p.ping();
  return (performance.now() - t) / n;
}
