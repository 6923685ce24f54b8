import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createServer, connect as tcpConnect, type AddressInfo } from 'node:net';
import { parseTrainingConfig } from '../src/config/training.ts';
import { freePort, startRedisServer, type RedisServer } from '../src/cluster/redis-server.ts';
import type { FunctionEvents, FunctionName, FunctionResults, GradientEvent } from '../src/functions/events.ts';
import { Peer } from '../src/peer/peer.ts';
import type { PeerData, RoundMetrics } from '../src/peer/types.ts';
import type { FunctionPlatform, PlatformMetrics } from '../src/platform/platform.ts';
import { closeRedis, connectRedis, type Redis } from '../src/tensor/redis-client.ts';
import { pushChunks } from '../src/tensor/transfer.ts';
import { RESNET18_PARAMS } from './in-db.ts';
import { median } from './stats.ts';

/**
 * `peerless bench round`: a round's data path alone, without gradient computation, against a
 * gloo all-reduce of the same vector. Real redis-servers with the module and real peers run
 * their real rounds (average, exchange, aggregation, update, agreement); G concurrent writers
 * per peer stand in for the functions and push pre-made gradients into the peer's Redis.
 */
export interface RoundBenchOptions {
  peerCounts: number[];
  exchanges: ('all' | 'sharded')[];
  /** Elements of the vector (default: ResNet-18's). */
  length: number;
  /** Writers per peer: gradients per peer per round. */
  writers: number;
  /** Measured rounds (after two warm-up rounds). */
  rounds: number;
  /** Run the gloo all-reduce beside (needs python3 with torch). */
  allreduce: boolean;
  onProgress?: (done: number, total: number, what: string) => void;
}

export interface RoundRow {
  peers: number;
  exchange: 'all' | 'sharded';
  /** From the first writer's first byte to the peer's average being ready, per gradient (median over peers and rounds). */
  ingestMsPerGradient: number;
  exchangeMs: number;
  aggregateMs: number;
  updateMs: number;
  /** From a peer's average being ready to its parameters being updated (exchange + aggregation + update), the slowest peer of each round, median over rounds. */
  roundMs: number;
  /** The same round's agreement on checksums and membership, after the update. */
  verifyMs: number;
  /** gloo all-reduce of the same vector among as many processes (median), or null without torch. */
  allreduceMs: number | null;
  /** roundMs / allreduceMs. */
  vsAllreduce: number | null;
  /** One vector's bytes over loopback into memory that already exists (median of 5): the limit. */
  wireMsPerVector: number;
  ingestVsWire: number;
  /** The longest single command in any peer's Redis during the measured rounds (its slow log). */
  maxStallMs: number;
  /** Growth of the peers' Redis used_memory over the measured rounds (MB): allocation that does not settle. */
  redisGrowthMb: number;
  /** Bytes a peer received from the others per round, in parameter vectors. */
  vectorsReceivedPerPeer: number;
  peakRssMb: number;
}

export interface RoundReport {
  benchmark: 'round';
  parameters: number;
  writers: number;
  rounds: number;
  cores: number;
  note: string;
  rows: RoundRow[];
}

/** Stands in for the gradient functions: pushes a pre-made gradient in chunks (PL.PUSH), as a function does. */
class PushPlatform implements FunctionPlatform {
  readonly kind = 'local' as const;
  private readonly clients = new Map<string, Promise<Redis>>();

  constructor(private readonly gradients: Float32Array[]) {}

  private client(url: string, slot: number): Promise<Redis> {
    const key = `${url}#${slot}`;
    let c = this.clients.get(key);
    if (!c) { c = connectRedis({ url }); this.clients.set(key, c); }
    return c;
  }

  async invoke<N extends FunctionName>(name: N, event: FunctionEvents[N]): Promise<FunctionResults[N]> {
    if (name !== 'gradient') throw new Error(`bench round: no ${name} function`);
    const e = event as GradientEvent;
    const b = Number(e.contributionId.slice(1));
    const slot = b % this.gradients.length;
    const t = performance.now();
    const c = await this.client(e.redis.url, slot);
    const { count, done } = await pushChunks(c, e, this.gradients[slot], `${e.round}.${b}`);
    const pushMs = performance.now() - t;
    return { loss: 0, accuracy: 0, samples: 1, count, done, timings: { loadMs: 0, computeMs: 0, pushMs } } as FunctionResults[N];
  }

  metrics(): PlatformMetrics {
    return { invocations: 0, failures: 0, retries: 0, coldStarts: 0, warmStarts: 0, billedMs: 0, estimatedCostUsd: 0 };
  }

  async close(): Promise<void> {
    await Promise.all([...this.clients.values()].map((c) => c.then(closeRedis, () => {})));
  }
}

function makeGradients(length: number, count: number): Float32Array[] {
  return Array.from({ length: count }, (_, k) => {
    const g = new Float32Array(length);
    let s = (k + 1) * 2654435761 >>> 0;
    for (let i = 0; i < length; i++) { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; g[i] = (s / 2 ** 32 - 0.5) * 0.01; }
    return g;
  });
}

/** One vector's bytes over a loopback TCP connection into a buffer that already exists (median of 5). */
async function wireMs(bytes: Buffer): Promise<number> {
  const sink = Buffer.alloc(bytes.length);
  const times: number[] = [];
  for (let rep = 0; rep < 5; rep++) {
    let got = 0;
    let done!: () => void;
    const finished = new Promise<void>((r) => { done = r; });
    const server = createServer((s) => {
      s.on('data', (d: Buffer) => { d.copy(sink, got); got += d.length; if (got >= bytes.length) { s.end(); done(); } });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const sock = tcpConnect((server.address() as AddressInfo).port, '127.0.0.1');
    await new Promise<void>((r) => sock.once('connect', r));
    const t = performance.now();
    sock.write(bytes);
    await finished;
    times.push(performance.now() - t);
    sock.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  }
  return median(times);
}

/** A python with torch: $PEERLESS_PYTHON, python3 on PATH, or Debian's (where python3-torch installs). */
async function torchPython(): Promise<string | null> {
  const candidates = [process.env.PEERLESS_PYTHON, 'python3', '/usr/bin/python3'].filter((c): c is string => Boolean(c));
  for (const py of candidates) {
    const ok = await new Promise<boolean>((resolve) => execFile(py, ['-c', 'import torch.distributed'], { timeout: 60_000 }, (err) => resolve(!err)));
    if (ok) return py;
  }
  return null;
}

/** gloo all-reduce of `length` float32 among `n` processes, median ms; null where torch is missing. */
async function allreduceMs(n: number, length: number, rounds: number): Promise<number | null> {
  const py = await torchPython();
  if (!py) return null;
  const script = fileURLToPath(new URL('./allreduce.py', import.meta.url));
  const port = await freePort();
  return new Promise((resolve) => {
    execFile(py, [script, String(n), String(length), String(rounds), String(port)], { timeout: 600_000 }, (err, stdout) => {
      if (err) return resolve(null);
      try { resolve((JSON.parse(stdout.trim().split('\n').pop()!) as { medianMs: number }).medianMs); } catch { resolve(null); }
    });
  });
}

async function usedMemory(clients: Redis[]): Promise<number> {
  const infos = await Promise.all(clients.map((c) => c.info('memory')));
  return infos.reduce((s, i) => s + Number(/used_memory:(\d+)/.exec(i)?.[1] ?? 0), 0);
}

async function maxSlowMs(clients: Redis[]): Promise<number> {
  let max = 0;
  for (const c of clients) {
    const entries = (await c.sendCommand(['SLOWLOG', 'GET', '1000'])) as unknown[][];
    for (const e of entries) max = Math.max(max, Number(e[2]) / 1000);
  }
  return max;
}

/** One network of `n` peers running `warm + rounds` rounds of the data path. */
async function runNetwork(o: RoundBenchOptions, n: number, exchange: 'all' | 'sharded', gradients: Float32Array[]): Promise<Omit<RoundRow, 'allreduceMs' | 'vsAllreduce' | 'wireMsPerVector' | 'ingestVsWire'>> {
  const warm = 2;
  const config = parseTrainingConfig({
    model: { name: 'resnet18' }, dataset: 'synthetic', batchesPerRound: o.writers, maxRounds: warm + o.rounds, epochs: 1000,
    checkEvery: 100_000, validationSize: 0, exchange, seed: 1, deadlineMs: 600_000,
    optimizer: { kind: 'sgd', lr: 0.01, momentum: 0.9 },
  });
  const servers: RedisServer[] = [];
  const clients: Redis[] = [];
  const peers: Peer[] = [];
  const platform = new PushPlatform(gradients);
  const model = { layoutHash: `bench-${o.length}`, length: o.length, trainable: o.length };
  const data: PeerData = { batches: o.writers, batchKeys: () => ({ images: '-', labels: '-' }), validation: { imagesKey: '-', labelsKey: '-', count: 0 } };
  const rounds: RoundMetrics[] = [];
  try {
    for (let i = 0; i < n; i++) {
      servers.push(await startRedisServer());
      clients.push(await connectRedis({ url: servers[i].url }));
    }
    const initialParams = new Float32Array(o.length).fill(0.01);
    for (let i = 0; i < n; i++) {
      const peer = new Peer({
        id: `p${String(i).padStart(2, '0')}`, redis: { url: servers[i].url }, platform, model, data, shard: { index: i, count: n },
        ...(i === 0 ? { found: { config, initialParams, roundsPerEpoch: 1 } } : { bootstrap: { url: servers[0].url, fromRound: 0 } }),
      });
      peer.on('round', (m: RoundMetrics) => {
        rounds.push(m);
        // After the warm-up, count only what the measured rounds do in Redis.
        if (m.round === warm - 1 && m.peer === 'p00') void Promise.all(clients.map((c) => c.sendCommand(['SLOWLOG', 'RESET'])));
      });
      await peer.start();
      peers.push(peer);
    }
    await Promise.all(clients.map((c) => c.sendCommand(['CONFIG', 'SET', 'slowlog-log-slower-than', '1000'])));
    let memBefore = 0;
    const memAtWarm = new Promise<void>((resolve) => {
      peers[0].on('round', (m: RoundMetrics) => { if (m.round === warm - 1) void usedMemory(clients).then((b) => { memBefore = b; resolve(); }); });
    });
    await Promise.all(peers.map((p) => p.run()));
    await memAtWarm;
    const memAfter = await usedMemory(clients);
    const measured = rounds.filter((m) => m.round >= warm);
    const byRound = new Map<number, RoundMetrics[]>();
    for (const m of measured) byRound.set(m.round, [...(byRound.get(m.round) ?? []), m]);
    const slowest = (f: (m: RoundMetrics) => number) => median([...byRound.values()].map((ms) => Math.max(...ms.map(f))));
    return {
      peers: n, exchange,
      ingestMsPerGradient: median(measured.map((m) => (m.computeMs + m.averageMs) / o.writers)),
      exchangeMs: slowest((m) => m.exchangeMs),
      aggregateMs: slowest((m) => m.aggregateMs),
      updateMs: slowest((m) => m.updateMs),
      roundMs: slowest((m) => m.exchangeMs + m.aggregateMs + m.updateMs),
      verifyMs: slowest((m) => m.verifyMs),
      maxStallMs: await maxSlowMs(clients),
      redisGrowthMb: (memAfter - memBefore) / 2 ** 20,
      vectorsReceivedPerPeer: median(measured.map((m) => m.bytesReceived)) / (o.length * 4),
      peakRssMb: process.resourceUsage().maxRSS / 1024,
    };
  } finally {
    await Promise.allSettled(peers.map((p) => p.close()));
    await platform.close();
    await Promise.allSettled(clients.map(closeRedis));
    await Promise.allSettled(servers.map((s) => s.stop()));
  }
}

export async function runRoundBench(o: RoundBenchOptions): Promise<RoundReport> {
  const gradients = makeGradients(o.length, o.writers);
  const wire = await wireMs(Buffer.from(gradients[0].buffer));
  const rows: RoundRow[] = [];
  const total = o.peerCounts.length * (o.exchanges.length + (o.allreduce ? 1 : 0));
  let done = 0;
  for (const n of o.peerCounts) {
    let ar: number | null = null;
    if (o.allreduce) {
      o.onProgress?.(done++, total, `gloo all-reduce, ${n} processes`);
      ar = await allreduceMs(n, o.length, Math.max(10, o.rounds));
    }
    for (const exchange of o.exchanges) {
      o.onProgress?.(done++, total, `${n} peers, exchange ${exchange}`);
      const r = await runNetwork(o, n, exchange, gradients);
      rows.push({ ...r, allreduceMs: ar, vsAllreduce: ar ? r.roundMs / ar : null, wireMsPerVector: wire, ingestVsWire: r.ingestMsPerGradient / wire });
    }
  }
  o.onProgress?.(total, total, 'done');
  return {
    benchmark: 'round', parameters: o.length, writers: o.writers, rounds: o.rounds,
    cores: (await import('node:os')).availableParallelism(),
    note: 'every peer, its redis-server and the writers share this machine\'s cores, as the all-reduce\'s processes do',
    rows,
  };
}

export { RESNET18_PARAMS };
