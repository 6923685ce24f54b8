import { startRedisServer } from '../src/cluster/redis-server.ts';
import { InDbTensorStore } from '../src/tensor/in-db.ts';
import { OutsideDbTensorStore } from '../src/tensor/outside-db.ts';
import { closeRedis, connectRedis, type Redis } from '../src/tensor/redis-client.ts';
import type { TensorStore } from '../src/tensor/tensor-store.ts';
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
  averageInDbMs: number;
  averageOutsideDbMs: number;
  averageSpeedup: number;
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

async function timeAverage(store: TensorStore, prefix: string, grads: Float32Array[], n: number): Promise<number> {
  const t = performance.now();
  for (let i = 0; i < n; i++) {
    const r = await store.accumulate(`${prefix}:sum`, `${prefix}:avg`, `g${i}`, n, grads[i % grads.length]);
    if (i === n - 1 && !r.done) throw new Error(`${prefix}: the average was not completed after ${n} gradients`);
  }
  return performance.now() - t;
}

async function timeUpdate(store: TensorStore, prefix: string, grad: string): Promise<number> {
  const t = performance.now();
  await store.sgd(`${prefix}:params`, grad, `${prefix}:velocity`, { lr: 0.01, momentum: 0.9 });
  return performance.now() - t;
}

/**
 * The paper's Table 2 on one real redis-server with the module: for each gradient count,
 * push and average the gradients through the module (in-DB) and through the client
 * (outside-DB: fetch the running sum, add in Node, store back), then one SGD-momentum
 * update each way. Both ways run in the same process against the same server, and their
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
      probe.start();
      const averageInDbMs = await timeAverage(inDb, 'in', grads, n);
      const inStall = await probe.stop();
      tick(`${n} gradients in the database`);
      const averageOutsideDbMs = await timeAverage(outside, 'out', grads, n);
      tick(`${n} gradients outside the database`);
      let identical = (await inDb.checksum('in:avg')) === (await inDb.checksum('out:avg'));

      const upIn: number[] = [], upOut: number[] = [];
      let worstStall = inStall.worstMs;
      await inDb.set('in:params', params);
      await inDb.set('out:params', params);
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
        averageInDbMs, averageOutsideDbMs, averageSpeedup: averageOutsideDbMs / averageInDbMs,
        updateInDbMs, updateOutsideDbMs, updateSpeedup: updateOutsideDbMs / updateInDbMs,
        worstStallInDbMs: worstStall,
        identical,
      });
    }

    const stats = String(await client.info('commandstats'));
    const serverUsecPerCall: Record<string, number> = {};
    for (const m of stats.matchAll(/cmdstat_(pl\.[a-z]+):calls=\d+,usec=\d+,usec_per_call=([\d.]+)/g)) serverUsecPerCall[m[1].toUpperCase()] = Number(m[2]);
    return { benchmark: 'in-db', parameters: o.length, tensorBytes: o.length * 4, rows, serverUsecPerCall, paper: PAPER_TABLE2 };
  } finally {
    await probe?.close();
    if (client) await closeRedis(client);
    await server.stop();
  }
}
