import { execFile } from 'node:child_process';
import type { Exchange } from '../src/config/exchanges.ts';
import { fileURLToPath } from 'node:url';
import { getPriority } from 'node:os';
import { createServer, connect as tcpConnect, type AddressInfo } from 'node:net';
import { freePort, startRedisServer, type RedisServer } from '../src/cluster/redis-server.ts';
import { Worker } from 'node:worker_threads';
import type { RoundMetrics } from '../src/peer/types.ts';
import { closeRedis, connectRedis, type Redis } from '../src/tensor/redis-client.ts';
import { averageWritten, InDbTensorStore } from '../src/tensor/in-db.ts';
import { DirectSender, directRoute, ensureTensor, pushChunks } from '../src/tensor/transfer.ts';
import { K } from '../src/peer/net/keys.ts';
import { applyUpdate } from '../src/peer/round/update.ts';
import type { RoundPeerData } from './round-peer.ts';
import { makeGradients } from './gradients.ts';
import { RESNET18_PARAMS } from './in-db.ts';
import { commandCounts, niceOf, serverCpuMs, serverPid, serverRunDelayMs, type CommandCount } from './server-cpu.ts';
import { median } from './stats.ts';

/**
 * `peerless bench round`: a round's data path alone, without gradient computation, against a
 * gloo all-reduce of the same vector. Real redis-servers with the module and real peers run
 * their real rounds (average, exchange, aggregation, update, agreement); G concurrent writers
 * per peer stand in for the functions and push pre-made gradients into the peer's Redis.
 */
export interface RoundBenchOptions {
  peerCounts: number[];
  exchanges: Exchange[];
  /** How averages travel between the peers' Redis servers, each its own row. */
  transfers: ('direct' | 'relay')[];
  /** Elements of the vector (default: ResNet-18's). */
  length: number;
  /** Writers per peer: gradients per peer per round. */
  writers: number;
  /** Measured rounds (after two warm-up rounds). */
  rounds: number;
  /** Run the gloo all-reduce beside (needs python3 with torch). */
  allreduce: boolean;
  /**
   * Start the peers' redis-servers under `nice -n N` (default: the bench's own priority). A
   * negative N gives them the cores before the peers and writers: how much of a row's stall is
   * a server kept off its core. Below 0 needs root or CAP_SYS_NICE.
   */
  serverNice?: number;
  onProgress?: (done: number, total: number, what: string) => void;
}

export interface RoundRow {
  peers: number;
  exchange: Exchange;
  transfer: 'direct' | 'relay';
  /** From the first writer's first byte to the peer's average being ready, per gradient (median over peers and rounds). */
  ingestMsPerGradient: number;
  exchangeMs: number;
  aggregateMs: number;
  updateMs: number;
  /** From every peer's average being ready to every peer's parameters being updated (exchange + aggregation + update), median over rounds. */
  roundMs: number;
  /** The same round's agreement on checksums and membership, after the update. */
  verifyMs: number;
  /** Peer-rounds whose parameters differed from the coordinator's and were repaired (0: every replica agreed by construction). */
  repairs: number;
  /** gloo all-reduce of the same vector among as many processes (median), or null without torch. */
  allreduceMs: number | null;
  /** roundMs / allreduceMs. */
  vsAllreduce: number | null;
  /**
   * CPU per measured round of the whole network: every peer's redis-server (INFO cpu: user +
   * system, all its threads) and every peer's thread with its writers (this process). Whole
   * rounds: ingest, exchange, aggregation, update and agreement. On shared cores wall times
   * drift with the load; the CPU a round costs drifts less (about 10% between runs beside a
   * test stream, where wall times doubled).
   */
  redisCpuMsPerRound: number;
  nodeCpuMsPerRound: number;
  /**
   * Per measured round, how long the peers' redis-servers' command threads were ready to run
   * but waited for a core (Linux schedstat, summed over the servers), or null where the kernel
   * does not say. Such a wait inside a command lengthens it: the stalls above the alone figures.
   */
  redisWaitMsPerRound: number | null;
  /** The gloo all-reduce's CPU per all-reduce, every rank's process summed (barriers included), or null. */
  allreduceCpuMs: number | null;
  /**
   * The limit for ingest at the same load: as many writers as the round has (G per peer, every
   * peer at once), each writing one vector over loopback into a tensor that already exists in
   * its peer's Redis (PL.SETRANGE chunks, nothing summed), wall time / G (median of 5).
   */
  wireMsPerVector: number;
  /** One vector over one loopback TCP connection into a buffer that exists, nothing else running (median of 5). */
  wireMsSingleStream: number;
  ingestVsWire: number;
  /** The longest single command in any peer's Redis during the measured rounds (its slow log). */
  maxStallMs: number;
  /** The longest command of each kind (ms): where the stalls come from. */
  stallsByCommand: Record<string, number>;
  /** The nice value added to the peers' redis-servers' (RoundBenchOptions.serverNice), 0 by default. */
  serverNice: number;
  /** Growth of the peers' Redis used_memory over the measured rounds (MB): allocation that does not settle. */
  redisGrowthMb: number;
  /** Bytes a peer received from the others per round, in parameter vectors. */
  vectorsReceivedPerPeer: number;
  /**
   * Commands one peer's Redis runs per measured round (every server summed, / peers / rounds):
   * the writers' pushes and the peer's own commands, from INFO commandstats. Every command is
   * a round trip or a slot in a pipeline, and the calls the peer waits on one by one add up.
   * The bench's own reads (INFO, SLOWLOG, CONFIG) are left out. The counters are read when the
   * first peer ends its warm-up, so other peers may be a round ahead or behind: within one
   * round's worth over all measured rounds.
   */
  commandsPerRound: { calls: number; redisMs: number; byCommand: Record<string, CommandCount> };
  peakRssMb: number;
}

/** The longest each command kind runs in one peer's Redis when nothing else runs (see `commandsAlone`). */
export interface AloneStalls {
  maxMs: number;
  byCommand: Record<string, number>;
}

export interface RoundReport {
  benchmark: 'round';
  /**
   * One peer's round of commands (ingest, average, send, aggregate, update, checksum) on an
   * idle server, one command at a time: how long each holds its Redis by itself, where the
   * rows' max stall also counts the time a busy machine keeps the server off its core.
   */
  alone: AloneStalls;
  parameters: number;
  writers: number;
  rounds: number;
  cores: number;
  note: string;
  rows: RoundRow[];
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
export async function torchPython(): Promise<string | null> {
  const candidates = [process.env.PEERLESS_PYTHON, 'python3', '/usr/bin/python3'].filter((c): c is string => Boolean(c));
  for (const py of candidates) {
    const ok = await new Promise<boolean>((resolve) => execFile(py, ['-c', 'import torch.distributed'], { timeout: 60_000 }, (err) => resolve(!err)));
    if (ok) return py;
  }
  return null;
}

/** What bench/allreduce.py prints: the median ms of an all-reduce, and its CPU (every rank). */
interface AllreduceResult {
  medianMs: number;
  cpuMsPerRound: number;
}

/** gloo all-reduce of `length` float32 among `n` processes; null where torch is missing. */
async function allreduce(n: number, length: number, rounds: number): Promise<AllreduceResult | null> {
  const py = await torchPython();
  if (!py) return null;
  const script = fileURLToPath(new URL('./allreduce.py', import.meta.url));
  const port = await freePort();
  return new Promise((resolve) => {
    execFile(py, [script, String(n), String(length), String(rounds), String(port)], { timeout: 600_000 }, (err, stdout) => {
      if (err) return resolve(null);
      try { resolve(JSON.parse(stdout.trim().split('\n').pop()!) as AllreduceResult); } catch { resolve(null); }
    });
  });
}

/** CPU so far of the servers (all their threads) and of this process (every thread), ms. */
async function cpuNow(clients: Redis[], pids: number[]): Promise<{ redis: number; node: number; redisWait: number | null }> {
  const [servers, waits] = await Promise.all([Promise.all(clients.map(serverCpuMs)), Promise.all(pids.map(serverRunDelayMs))]);
  const u = process.cpuUsage();
  const sum = (xs: number[]) => xs.reduce((s, ms) => s + ms, 0);
  return { redis: sum(servers), node: (u.user + u.system) / 1000, redisWait: waits.every((w) => w !== null) ? sum(waits as number[]) : null };
}

/**
 * Starts one peer's redis-server at the nice value asked for; an unprivileged `nice` with a
 * negative value warns and runs the server at the default, so the value is read back.
 */
async function startPeerServer(nice: number): Promise<{ server: RedisServer; client: Redis; pid: number }> {
  const server = await startRedisServer(nice === 0 ? {} : { wrapper: ['nice', '-n', String(nice)] });
  const client = await connectRedis({ url: server.url });
  const pid = await serverPid(client);
  const got = await niceOf(pid);
  // `nice -n` adds to this process's own nice value.
  const want = Math.min(19, Math.max(-20, getPriority() + nice));
  if (got !== null && got !== want) {
    await closeRedis(client);
    await server.stop();
    throw new Error(`--server-nice ${nice}: the redis-server runs at nice ${got}, not ${want} (lowering a nice value needs root or CAP_SYS_NICE)`);
  }
  return { server, client, pid };
}

/** Commands the bench itself sends: not the round's. */
const BENCH_OWN = new Set(['INFO', 'SLOWLOG', 'CONFIG', 'CLIENT|SETNAME', 'CLIENT|SETINFO', 'HELLO', 'PING']);

/** Every server's commands so far, summed by kind. */
async function commandsNow(clients: Redis[]): Promise<Map<string, CommandCount>> {
  const sum = new Map<string, CommandCount>();
  for (const counts of await Promise.all(clients.map(commandCounts))) {
    for (const [name, c] of counts) {
      const s = sum.get(name) ?? { calls: 0, ms: 0 };
      sum.set(name, { calls: s.calls + c.calls, ms: s.ms + c.ms });
    }
  }
  return sum;
}

/** Per peer and round between two readings, most called first. */
function commandsPerRound(before: Map<string, CommandCount>, after: Map<string, CommandCount>, peers: number, rounds: number): RoundRow['commandsPerRound'] {
  const byCommand: Record<string, CommandCount> = {};
  let calls = 0, ms = 0;
  const rows = [...after].filter(([name]) => !BENCH_OWN.has(name))
    .map(([name, a]) => [name, { calls: (a.calls - (before.get(name)?.calls ?? 0)) / peers / rounds, ms: (a.ms - (before.get(name)?.ms ?? 0)) / peers / rounds }] as const)
    .filter(([, c]) => c.calls > 0)
    .sort((x, y) => y[1].calls - x[1].calls);
  for (const [name, c] of rows) {
    byCommand[name] = c;
    calls += c.calls;
    ms += c.ms;
  }
  return { calls, redisMs: ms, byCommand };
}

async function usedMemory(clients: Redis[]): Promise<number> {
  const infos = await Promise.all(clients.map((c) => c.info('memory')));
  return infos.reduce((s, i) => s + Number(/used_memory:(\d+)/.exec(i)?.[1] ?? 0), 0);
}

/** The longest command of each kind in the peers' slow logs (ms), longest first. */
async function stallsByCommand(clients: Redis[]): Promise<Record<string, number>> {
  const by = new Map<string, number>();
  for (const c of clients) {
    const entries = (await c.sendCommand(['SLOWLOG', 'GET', '1000'])) as unknown[][];
    for (const e of entries) {
      const name = String((e[3] as unknown[])[0]).toUpperCase();
      by.set(name, Math.max(by.get(name) ?? 0, Number(e[2]) / 1000));
    }
  }
  return Object.fromEntries([...by].sort((x, y) => y[1] - x[1]));
}

/** A bench peer's thread: resolves with its next message of the given kind. */
function spawnPeer(d: RoundPeerData, onRound: (m: RoundMetrics) => void): { worker: Worker; started: Promise<void>; finished: Promise<void> } {
  const worker = new Worker(new URL('./round-peer.mjs', import.meta.url), { workerData: d });
  let started!: () => void, finished!: () => void, failed!: (e: Error) => void;
  const startedP = new Promise<void>((r) => { started = r; });
  const finishedP = new Promise<void>((r, j) => { finished = r; failed = j; });
  worker.on('message', (m: unknown) => {
    if (m === 'started') started();
    else if (m === 'finished') finished();
    else if (typeof m === 'object' && m && 'round' in m) onRound((m as { round: RoundMetrics }).round);
    else if (typeof m === 'object' && m && 'error' in m) failed(new Error(`bench peer ${d.id}: ${(m as { error: string }).error}`));
  });
  worker.on('error', (e) => failed(e));
  worker.on('exit', (code) => failed(new Error(`bench peer ${d.id} exited (${code}) before finishing`)));
  // A peer that fails while starting fails the bench, not a hang.
  return { worker, started: Promise.race([startedP, finishedP.then(() => {})]), finished: finishedP };
}

/**
 * One network of `n` peers running `warm + rounds` rounds of the data path. Each peer runs in
 * its own thread, as each peer of a real network has its own process: one event loop moving
 * every peer's bytes would measure Node, not the data path.
 */
/**
 * The wire figure at the round's load (see RoundRow.wireMsPerVector): n redis-servers, each
 * with its G writers in a thread of their own, all writing at once.
 */
async function wireUnderLoad(o: RoundBenchOptions, n: number): Promise<number> {
  const servers: RedisServer[] = [];
  const workers: Worker[] = [];
  const next = (w: Worker) => new Promise<unknown>((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
  });
  try {
    for (let i = 0; i < n; i++) servers.push(await startRedisServer());
    for (const s of servers) {
      const w = new Worker(new URL('./wire-writer.mjs', import.meta.url), { workerData: { url: s.url, length: o.length, writers: o.writers } });
      workers.push(w);
      await next(w); // 'ready': its tensors exist at full size
    }
    const times: number[] = [];
    for (let rep = 0; rep < 6; rep++) {
      const took = await Promise.all(workers.map((w) => { const t = next(w); w.postMessage('go'); return t; }));
      if (rep > 0) times.push(Math.max(...(took as number[])) / o.writers); // the first warms up
    }
    await Promise.all(workers.map((w) => { const t = next(w); w.postMessage('close'); return t; }));
    return median(times);
  } finally {
    await Promise.allSettled(workers.map((w) => w.terminate()));
    await Promise.allSettled(servers.map((s) => s.stop()));
  }
}

async function runNetwork(o: RoundBenchOptions, n: number, exchange: Exchange, transfer: 'direct' | 'relay'): Promise<Omit<RoundRow, 'allreduceMs' | 'vsAllreduce' | 'allreduceCpuMs' | 'wireMsPerVector' | 'wireMsSingleStream' | 'ingestVsWire'>> {
  const warm = 2;
  const servers: RedisServer[] = [];
  const clients: Redis[] = [];
  const workers: Worker[] = [];
  const rounds: RoundMetrics[] = [];
  let memBefore = 0;
  const pids: number[] = [];
  const nice = o.serverNice ?? 0;
  let cpuBefore: { redis: number; node: number; redisWait: number | null } = { redis: 0, node: 0, redisWait: 0 };
  let commandsBefore = new Map<string, CommandCount>();
  let atWarm: Promise<void> = Promise.resolve();
  const onRound = (m: RoundMetrics) => {
    rounds.push(m);
    // After the warm-up, count only what the measured rounds do in Redis.
    if (m.round === warm - 1 && m.peer === 'p00') {
      atWarm = Promise.all(clients.map((c) => c.sendCommand(['SLOWLOG', 'RESET']))).then(() => usedMemory(clients)).then((b) => { memBefore = b; })
        .then(() => cpuNow(clients, pids)).then((c) => { cpuBefore = c; })
        .then(() => commandsNow(clients)).then((c) => { commandsBefore = c; });
    }
  };
  try {
    for (let i = 0; i < n; i++) {
      const s = await startPeerServer(nice);
      servers.push(s.server);
      clients.push(s.client);
      pids.push(s.pid);
    }
    await Promise.all(clients.map((c) => c.sendCommand(['CONFIG', 'SET', 'slowlog-log-slower-than', '1000'])));
    const finished: Promise<void>[] = [];
    for (let i = 0; i < n; i++) {
      const d: RoundPeerData = {
        id: `p${String(i).padStart(2, '0')}`, url: servers[i].url, index: i, peers: n, length: o.length, writers: o.writers,
        exchange, transfer, rounds: warm + o.rounds, ...(i === 0 ? {} : { bootstrapUrl: servers[0].url }),
      };
      const p = spawnPeer(d, onRound);
      workers.push(p.worker);
      finished.push(p.finished);
      await p.started; // the founder first; the others join it, one founding group
    }
    for (const w of workers) w.postMessage('run');
    await Promise.all(finished);
    const cpuAfter = await cpuNow(clients, pids);
    const commandsAfter = await commandsNow(clients);
    await atWarm;
    const memAfter = await usedMemory(clients);
    const stalls = await stallsByCommand(clients);
    const measured = rounds.filter((m) => m.round >= warm);
    const byRound = new Map<number, RoundMetrics[]>();
    for (const m of measured) byRound.set(m.round, [...(byRound.get(m.round) ?? []), m]);
    const slowest = (f: (m: RoundMetrics) => number) => median([...byRound.values()].map((ms) => Math.max(...ms.map(f))));
    return {
      peers: n, exchange, transfer,
      ingestMsPerGradient: median(measured.map((m) => (m.computeMs + m.averageMs) / o.writers)),
      exchangeMs: slowest((m) => m.exchangeMs),
      aggregateMs: slowest((m) => m.aggregateMs),
      updateMs: slowest((m) => m.updateMs),
      // From every peer's average being ready to every peer's parameters updated.
      roundMs: median([...byRound.values()].map((ms) => Math.max(...ms.map((m) => m.updatedAt)) - Math.max(...ms.map((m) => m.averagedAt)))),
      verifyMs: slowest((m) => m.verifyMs),
      repairs: rounds.filter((m) => m.repaired).length,
      maxStallMs: Math.max(0, ...Object.values(stalls)),
      stallsByCommand: stalls,
      serverNice: nice,
      redisGrowthMb: (memAfter - memBefore) / 2 ** 20,
      vectorsReceivedPerPeer: median(measured.map((m) => m.bytesReceived)) / (o.length * 4),
      commandsPerRound: commandsPerRound(commandsBefore, commandsAfter, n, o.rounds),
      peakRssMb: process.resourceUsage().maxRSS / 1024,
      redisCpuMsPerRound: (cpuAfter.redis - cpuBefore.redis) / o.rounds,
      nodeCpuMsPerRound: (cpuAfter.node - cpuBefore.node) / o.rounds,
      redisWaitMsPerRound: cpuAfter.redisWait === null || cpuBefore.redisWait === null ? null : (cpuAfter.redisWait - cpuBefore.redisWait) / o.rounds,
    };
  } finally {
    await Promise.allSettled(workers.map((w) => w.terminate()));
    await Promise.allSettled(clients.map(closeRedis));
    await Promise.allSettled(servers.map((s) => s.stop()));
  }
}

/**
 * One peer's round on idle servers, one command at a time, timed by Redis's slow log
 * (slowlog-log-slower-than 0): G gradients pushed in chunks (PL.PUSH, the average written
 * after the last), one slice sent to a second server (PL.SEND), a 4-input aggregation, the
 * update and the checksum, each in the pieces the peer uses. Three rounds; the third is timed
 * (the first two allocate what steady rounds reuse: round keys alternate by parity).
 */
async function commandsAlone(o: RoundBenchOptions): Promise<AloneStalls> {
  const servers = [await startRedisServer(), await startRedisServer()];
  const [local, other] = await Promise.all(servers.map((s) => connectRedis({ url: s.url })));
  const sender = new DirectSender({ url: servers[0].url });
  try {
    const store = new InDbTensorStore(local);
    const grads = makeGradients(o.length, o.writers);
    const slice = Math.ceil(o.length / 4);
    await store.set(K.params, grads[0]);
    await ensureTensor(other, 'slice', slice);
    for (let k = 0; k < 3; k++) await store.set(`in:${k}`, grads[k % grads.length]);
    let stalls: Record<string, number> = {};
    for (const round of [0, 1, 2]) {
      await local.sendCommand(['CONFIG', 'SET', 'slowlog-log-slower-than', String(round === 2 ? 0 : 1_000_000)]);
      await local.sendCommand(['CONFIG', 'SET', 'slowlog-max-len', '100000']);
      await local.sendCommand(['SLOWLOG', 'RESET']);
      const sum = { sumKey: K.gradSum(round), avgKey: K.gradAvg(round), expected: o.writers, round };
      for (const [k, g] of grads.entries()) await pushChunks(local, { ...sum, contributionId: `b${k}` }, g, `${round}.${k}`);
      await averageWritten(local, K.gradAvg(round), round);
      await sender.send(K.gradAvg(round), 0, slice, directRoute(servers[1].url)!, 'slice', 0);
      await store.aggregate(K.aggregate(round), [K.gradAvg(round), 'in:0', 'in:1', 'in:2'], { rule: 'mean' }, o.length);
      await applyUpdate({ peer: 'alone', round, local, optimizer: { kind: 'sgd', lr: 0.01, momentum: 0.9, nesterov: false, weightDecay: 0 }, lr: 0.01, model: { length: o.length, trainable: o.length } });
      await store.checksum(K.params);
      if (round === 2) stalls = await stallsByCommand([local]);
    }
    for (const name of ['SLOWLOG', 'CONFIG', 'GET', 'SET', 'EXEC', 'MULTI']) delete stalls[name];
    return { maxMs: Math.max(0, ...Object.values(stalls)), byCommand: stalls };
  } finally {
    await sender.close();
    await Promise.allSettled([closeRedis(local), closeRedis(other)]);
    await Promise.allSettled(servers.map((s) => s.stop()));
  }
}

export async function runRoundBench(o: RoundBenchOptions): Promise<RoundReport> {
  if (o.serverNice) {
    // Refused before minutes of measuring, not after.
    const probe = await startPeerServer(o.serverNice);
    await closeRedis(probe.client);
    await probe.server.stop();
  }
  const single = await wireMs(Buffer.from(makeGradients(o.length, 1)[0].buffer));
  const rows: RoundRow[] = [];
  const total = o.peerCounts.length * (o.exchanges.length * o.transfers.length + 1 + (o.allreduce ? 1 : 0));
  let done = 0;
  for (const n of o.peerCounts) {
    o.onProgress?.(done++, total, `wire, ${n} peers x ${o.writers} writers`);
    const wire = await wireUnderLoad(o, n);
    let ar: AllreduceResult | null = null;
    if (o.allreduce) {
      o.onProgress?.(done++, total, `gloo all-reduce, ${n} processes`);
      ar = await allreduce(n, o.length, Math.max(10, o.rounds));
    }
    for (const exchange of o.exchanges) {
      for (const transfer of o.transfers) {
        o.onProgress?.(done++, total, `${n} peers, exchange ${exchange}, ${transfer}`);
        const r = await runNetwork(o, n, exchange, transfer);
        rows.push({ ...r, allreduceMs: ar?.medianMs ?? null, vsAllreduce: ar ? r.roundMs / ar.medianMs : null, allreduceCpuMs: ar?.cpuMsPerRound ?? null, wireMsPerVector: wire, wireMsSingleStream: single, ingestVsWire: r.ingestMsPerGradient / wire });
      }
    }
  }
  o.onProgress?.(total, total, 'one peer\'s commands alone');
  const alone = await commandsAlone(o);
  o.onProgress?.(total, total, 'done');
  return {
    benchmark: 'round', alone, parameters: o.length, writers: o.writers, rounds: o.rounds,
    cores: (await import('node:os')).availableParallelism(),
    note: 'every peer, its redis-server and the writers share this machine\'s cores, as the all-reduce\'s processes do',
    rows,
  };
}

export { RESNET18_PARAMS };
