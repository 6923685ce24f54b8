/**
 * `peerless bench chunks`: the sweep that chooses the transfer path's chunk size. For each
 * size, on real redis-servers with the module, side by side in one run:
 * - push: G writers push one gradient each in chunks (PL.PUSH), as functions do, into one sum;
 * - stream: one vector streamed between two Redis servers (PL.GETRANGE / PL.SETRANGE), as the
 *   exchange and the state copy do;
 * with the longest single command in the receiving Redis (its slow log): bigger chunks mean
 * fewer round trips but longer stalls for the other clients.
 */
import { startRedisServer, type RedisServer } from '../src/cluster/redis-server.ts';
import { closeRedis, connectRedis, type Redis } from '../src/tensor/redis-client.ts';
import { ensureTensor, pushChunks, streamTensor } from '../src/tensor/transfer.ts';
import { makeGradients } from './gradients.ts';
import { median } from './stats.ts';

export interface ChunkBenchOptions {
  length: number;
  /** Chunk sizes to try, in elements. */
  chunks: number[];
  writers: number;
  repeats: number;
  onProgress?: (done: number, total: number, what: string) => void;
}

export interface ChunkRow {
  chunkElements: number;
  chunkBytes: number;
  /** G gradients pushed concurrently into one sum, per gradient (median). */
  pushMsPerGradient: number;
  /** One vector from one Redis into another (median). */
  streamMsPerVector: number;
  /** The longest command in the receiving Redis during this size's runs. */
  maxStallMs: number;
}

export interface ChunkReport {
  benchmark: 'chunks';
  parameters: number;
  writers: number;
  repeats: number;
  /** The size the transfer path uses by default. */
  defaultChunkElements: number;
  rows: ChunkRow[];
}

async function maxStall(c: Redis): Promise<number> {
  const entries = (await c.sendCommand(['SLOWLOG', 'GET', '1000'])) as unknown[][];
  return entries.reduce((m, e) => Math.max(m, Number(e[2]) / 1000), 0);
}

export async function runChunkBench(o: ChunkBenchOptions, defaultChunkElements: number): Promise<ChunkReport> {
  const servers: RedisServer[] = [];
  const clients: Redis[] = [];
  try {
    for (let i = 0; i < 2; i++) {
      servers.push(await startRedisServer());
      clients.push(await connectRedis({ url: servers[i].url }));
    }
    const writers = await Promise.all(Array.from({ length: o.writers }, () => connectRedis({ url: servers[1].url })));
    const [from, to] = clients;
    await to.sendCommand(['CONFIG', 'SET', 'slowlog-log-slower-than', '1000']);
    const grads = makeGradients(o.length, o.writers);
    await from.sendCommand(['PL.SET', 'src', Buffer.from(grads[0].buffer)]);
    await ensureTensor(to, 'dst', o.length);
    const rows: ChunkRow[] = [];
    const total = o.chunks.length;
    let round = 0;
    for (const [k, chunkElements] of o.chunks.entries()) {
      o.onProgress?.(k, total, `chunks of ${(chunkElements * 4 / 1024).toFixed(0)} KiB`);
      const push: number[] = [], stream: number[] = [];
      // One warm-up, then the measured repeats (the slow log only for those).
      for (let r = -1; r < o.repeats; r++) {
        if (r === 0) await to.sendCommand(['SLOWLOG', 'RESET']);
        const t0 = performance.now();
        await Promise.all(writers.map((w, j) => pushChunks(w, { sumKey: 'sum', avgKey: 'avg', contributionId: `b${j}`, expected: o.writers, round }, grads[j], `a${round}.${j}`, { chunkElements })));
        round++;
        const t1 = performance.now();
        await streamTensor(from, 'src', 0, o.length, to, 'dst', 0, { chunkElements });
        const t2 = performance.now();
        if (r >= 0) { push.push((t1 - t0) / o.writers); stream.push(t2 - t1); }
      }
      rows.push({ chunkElements, chunkBytes: chunkElements * 4, pushMsPerGradient: median(push), streamMsPerVector: median(stream), maxStallMs: await maxStall(to) });
    }
    o.onProgress?.(total, total, 'done');
    await Promise.all(writers.map(closeRedis));
    return { benchmark: 'chunks', parameters: o.length, writers: o.writers, repeats: o.repeats, defaultChunkElements, rows };
  } finally {
    await Promise.allSettled(clients.map(closeRedis));
    await Promise.allSettled(servers.map((s) => s.stop()));
  }
}
