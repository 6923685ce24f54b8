import { startRedisServer } from '../src/cluster/redis-server.ts';
import { fromBytes } from '../src/tensor/bytes.ts';
import { averageWritten, InDbTensorStore, readTensorBytes } from '../src/tensor/in-db.ts';
import { OutsideDbTensorStore } from '../src/tensor/outside-db.ts';
import { closeRedis, connectRedis, type Redis } from '../src/tensor/redis-client.ts';
import type { TensorStore } from '../src/tensor/tensor-store.ts';
import { ensureTensor, pushChunks, writeChunks } from '../src/tensor/transfer.ts';
import { commandCounts } from './server-cpu.ts';
import { median } from './stats.ts';
import { StallProbe } from './stall-probe.ts';

/** ResNet-18's parameter count: the paper's Table 2 model. */
export const RESNET18_PARAMS = 11_172_810;
/** The paper's gradient counts: MNIST's 60k / 4 peers in batches of 64, 128, 512, 1024. */
export const PAPER_GRADIENTS = [235, 118, 30, 15];

export interface InDbBenchOptions {
  gradients: number[];
  length: number;
  /** Repetitions of the update, median reported. */
  updateRepeats: number;
  onProgress?: (done: number, total: number, what: string) => void;
}

export interface InDbRow {
  gradients: number;
  /** Pushing the gradients into Redis and averaging them, in the database (PL.PUSH chunks summed as they arrive). */
  averageInDbMs: number;
  /** The same outside it: each gradient written into Redis, then fetched, added in the client and the sum stored back. */
  averageOutsideDbMs: number;
  /** averageOutsideDbMs / averageInDbMs: including ingest (no target). */
  averageSpeedup: number;
  /**
   * Only the work after a gradient's bytes are in Redis, the original work's definition: in
   * the database, the server's own time in PL.PUSH (add in place, stage) plus writing the
   * average after the last; outside, fetch the gradient and the running sum, add, store back.
   */
  averageInDbAfterIngestMs: number;
  averageOutsideDbAfterIngestMs: number;
  averageAfterIngestSpeedup: number;
  updateInDbMs: number;
  updateOutsideDbMs: number;
  updateSpeedup: number;
  /** Worst PING round trip seen by another client during the in-DB work (ms). */
  worstStallInDbMs: number;
  /** Both stores produced byte-identical averages and parameters. */
  identical: boolean;
}

export interface InDbReport {
  benchmark: 'in-db';
  parameters: number;
  tensorBytes: number;
  rows: InDbRow[];
  /** Server-side time per call, from INFO commandstats (microseconds). */
  serverUsecPerCall: Record<string, number>;
  paper: { gradients: number; averageWithDbS: number; averageOutsideDbS: number; updateWithDbS: number; updateOutsideDbS: number }[];
}

const PAPER_TABLE2 = [
  { gradients: 235, averageWithDbS: 717.66, averageOutsideDbS: 947.32, updateWithDbS: 4.8, updateOutsideDbS: 27.52 },
  { gradients: 118, averageWithDbS: 255.44, averageOutsideDbS: 457.24, updateWithDbS: 4.8, updateOutsideDbS: 27.55 },
  { gradients: 30, averageWithDbS: 73.35, averageOutsideDbS: 120.23, updateWithDbS: 4.8, updateOutsideDbS: 27.44 },
  { gradients: 15, averageWithDbS: 37.41, averageOutsideDbS: 67.32, updateWithDbS: 4.8, updateOutsideDbS: 27.52 },
];

/** Deterministic pseudo-random gradients (a handful, reused: the values do not matter for timing). */
function makeGradients(length: number, count: number, seed = 1): Float32Array[] {
  let s = seed >>> 0;
  return Array.from({ length: count }, () => {
    const g = new Float32Array(length);
    for (let i = 0; i < length; i++) {
      s = (s * 1664525 + 1013904223) >>> 0;
      g[i] = (s / 2 ** 32 - 0.5) * 0.01;
    }
    return g;
  });
}

/**
 * The module's commands so far, from the server's own INFO commandstats: total and per-call
 * microseconds (to 2 decimals, as the server prints them).
 */
async function moduleStats(client: Redis): Promise<Record<string, { usec: number; usecPerCall: number }>> {
  const out: Record<string, { usec: number; usecPerCall: number }> = {};
  for (const [name, c] of await commandCounts(client)) {
    if (name.startsWith('PL.')) out[name] = { usec: Math.round(c.ms * 1000), usecPerCall: Math.round((c.ms * 1000 / c.calls) * 100) / 100 };
  }
  return out;
}

/** The server's own microseconds in PL.PUSH so far. */
async function pushUsec(client: Redis): Promise<number> {
  return (await moduleStats(client))['PL.PUSH']?.usec ?? 0;
}

/**
 * In the database, the functions' path: each gradient pushed in 1 MiB chunks (PL.PUSH), added
 * into the exact sum as it arrives; the average is written after the last. The time after
 * ingest is the server's own time in PL.PUSH plus the wait, after the last reply, for the
 * average to be announced (round trips included: it counts against the database).
 */
async function averageInDb(client: Redis, grads: Float32Array[], n: number, round: number): Promise<{ totalMs: number; afterIngestMs: number }> {
  const usec = await pushUsec(client);
  const t = performance.now();
  for (let i = 0; i < n; i++) {
    const r = await pushChunks(client, { sumKey: 'in:sum', avgKey: 'in:avg', contributionId: `g${i}`, expected: n, round }, grads[i % grads.length], `${round}.${i}`);
    if (i === n - 1 && !r.done) throw new Error(`in the database: the average was not complete after ${n} gradients`);
  }
  const replied = performance.now();
  await averageWritten(client, 'in:avg', round);
  const end = performance.now();
  return { totalMs: end - t, afterIngestMs: ((await pushUsec(client)) - usec) / 1000 + (end - replied) };
}

/**
 * Outside the database, as the original work did it: each gradient is written into Redis (the
 * ingest, in the same chunks), then fetched, added to the running sum fetched from Redis, and
 * the sum stored back (the same exact sum as the module's, so the bytes can be compared).
 */
async function averageOutsideDb(client: Redis, store: OutsideDbTensorStore, grads: Float32Array[], n: number): Promise<{ totalMs: number; afterIngestMs: number }> {
  const length = grads[0].length;
  await ensureTensor(client, 'out:g', length);
  let ingestMs = 0, afterIngestMs = 0;
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await writeChunks(client, 'out:g', 0, grads[i % grads.length]);
    const t1 = performance.now();
    const g = fromBytes(await readTensorBytes(client, 'out:g', 0, length), 'out:g');
    const r = await store.accumulate('out:sum', 'out:avg', `g${i}`, n, g);
    if (i === n - 1 && !r.done) throw new Error(`outside the database: the average was not complete after ${n} gradients`);
    ingestMs += t1 - t0;
    afterIngestMs += performance.now() - t1;
  }
  return { totalMs: ingestMs + afterIngestMs, afterIngestMs };
}

async function timeUpdate(store: TensorStore, prefix: string, grad: string): Promise<number> {
  const t = performance.now();
  await store.sgd(`${prefix}:params`, grad, `${prefix}:velocity`, { lr: 0.01, momentum: 0.9 });
  return performance.now() - t;
}

/**
 * The paper's Table 2 on one real redis-server with the module: for each gradient count,
 * push and average the gradients through the module (in-DB, PL.PUSH chunks) and through the
 * client (outside-DB: write the gradient, fetch it and the running sum, add in Node, store
 * back), then one SGD-momentum update each way. Both ways run in the same process against the same server, and their
 * results are compared byte for byte.
 */
export async function runInDbBench(o: InDbBenchOptions): Promise<InDbReport> {
  const server = await startRedisServer();
  let client: Redis | undefined;
  let probe: StallProbe | undefined;
  try {
    client = await connectRedis({ url: server.url });
    probe = await StallProbe.open(server.url);
    const inDb = new InDbTensorStore(client);
    const outside = new OutsideDbTensorStore(client);
    const grads = makeGradients(o.length, 3);
    const params = makeGradients(o.length, 1, 7)[0];
    const rows: InDbRow[] = [];
    const steps = o.gradients.length * 2 + o.gradients.length * o.updateRepeats * 2;
    let done = 0;
    const tick = (what: string) => o.onProgress?.(++done, steps, what);

    for (const n of o.gradients) {
      await client.flushAll();
      // A steady round, as a peer's are: the first allocates the sum, staging slots and
      // average once (fresh pages fault in, ~0.1 s), and later rounds reuse them.
      await averageInDb(client, grads, n, 0);
      probe.start();
      const inside = await averageInDb(client, grads, n, 1);
      const inStall = await probe.stop();
      tick(`${n} gradients in the database`);
      const outsideRun = await averageOutsideDb(client, outside, grads, n);
      tick(`${n} gradients outside the database`);
      let identical = (await inDb.checksum('in:avg')) === (await inDb.checksum('out:avg'));

      const upIn: number[] = [], upOut: number[] = [];
      let worstStall = inStall.worstMs;
      await inDb.set('in:params', params);
      await inDb.set('out:params', params);
      await timeUpdate(inDb, 'in', 'in:avg'); // creates the velocity (fresh memory), as a first round does
      await timeUpdate(outside, 'out', 'out:avg');
      for (let k = 0; k < o.updateRepeats; k++) {
        probe.start();
        upIn.push(await timeUpdate(inDb, 'in', 'in:avg'));
        worstStall = Math.max(worstStall, (await probe.stop()).worstMs);
        tick('update in the database');
        upOut.push(await timeUpdate(outside, 'out', 'out:avg'));
        tick('update outside the database');
      }
      identical &&= (await inDb.checksum('in:params')) === (await inDb.checksum('out:params'));
      const updateInDbMs = median(upIn), updateOutsideDbMs = median(upOut);
      rows.push({
        gradients: n,
        averageInDbMs: inside.totalMs, averageOutsideDbMs: outsideRun.totalMs, averageSpeedup: outsideRun.totalMs / inside.totalMs,
        averageInDbAfterIngestMs: inside.afterIngestMs, averageOutsideDbAfterIngestMs: outsideRun.afterIngestMs,
        averageAfterIngestSpeedup: outsideRun.afterIngestMs / inside.afterIngestMs,
        updateInDbMs, updateOutsideDbMs, updateSpeedup: updateOutsideDbMs / updateInDbMs,
        worstStallInDbMs: worstStall,
        identical,
      });
    }

    const serverUsecPerCall = Object.fromEntries(Object.entries(await moduleStats(client)).map(([name, st]) => [name, st.usecPerCall]));
    return { benchmark: 'in-db', parameters: o.length, tensorBytes: o.length * 4, rows, serverUsecPerCall, paper: PAPER_TABLE2 };
  } finally {
    await probe?.close();
    if (client) await closeRedis(client);
    await server.stop();
  }
}
