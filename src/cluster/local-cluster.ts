import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { InDbTensorStore } from '../tensor/in-db.ts';
import { checkLocalPeers } from './local-limits.ts';
import { exportModel } from '../model/export.ts';
import { exportFromRedis } from './export-network.ts';
import type { Phase } from '../peer/round-machine.ts';
import type { TlsFiles } from './tls.ts';
import { isIP } from 'node:net';
import { dirname, join } from 'node:path';
import { fitRounds, roundsPerEpoch, totalRounds, type TrainingConfig } from '../config/training.ts';
import { LocalPlatform } from '../platform/local/local-platform.ts';
import type { FunctionPlatform } from '../platform/platform.ts';
import { K } from '../peer/net/keys.ts';
import { Membership } from '../peer/net/membership.ts';
import { Peer } from '../peer/peer.ts';
import { protocolMismatch, readPlan } from '../peer/plan.ts';
import { requestStop } from '../peer/net/stop.ts';
import type { PeerOutcome, PeerStatus, RoundMetrics } from '../peer/types.ts';
import { closeRedis, connectRedis, type RedisLocation } from '../tensor/redis-client.ts';
import { startRedisServer, type RedisServer } from './redis-server.ts';
import { buildNetworkModel, dataOf, prepareModel, preparePeerData, evaluateTestSet, type TestResult } from './training-setup.ts';

export interface ClusterOptions {
  peers: number;
  config: TrainingConfig;
  platform: FunctionPlatform;
  /** Serve every peer's Redis over TLS with these files (rediss://; clients trust PEERLESS_TLS_CA). */
  tls?: TlsFiles;
  /**
   * The network secret (off when omitted): the peers', functions' and observers' users on every
   * peer's Redis derive from it (src/peer/net/access.ts). Each Redis's own (owner) password is
   * another, drawn at random for the run, so holding the secret opens no peer's Redis as owner.
   */
  password?: string;
  /**
   * The host at which the functions and the peers reach this machine's redis-servers (each on
   * its own port): needed when the functions run elsewhere (aws-lambda). Default: loopback.
   */
  advertise?: string;
  /** The address the redis-servers listen on (default: the advertised host when it is an IP, else loopback). */
  bind?: string;
  /** JSON-lines file of per-round metrics. */
  metricsFile?: string;
  /** Data directories for the redis-servers, one per peer, so a run can be resumed. */
  dataDir?: string;
  /** Resume from the state kept in the servers' data directories. */
  resume?: boolean;
  /** Evaluate the final model on the data's test set (when it has one). */
  testEvaluation?: boolean;
  /** Write the trained model here, in the TensorFlow.js Layers format (src/model/export.ts). */
  saveDir?: string;
  /** Also write the model every N rounds into saveDir/round-R (the parameters round R starts from). */
  checkpointEvery?: number;
  onStatus?: (s: PeerStatus) => void;
  onRound?: (m: RoundMetrics) => void;
  onLog?: (msg: string) => void;
  /** Aborting it stops the whole network cleanly after the next round (Ctrl-C in `train`). */
  signal?: AbortSignal;
  /** Called once the plan is known: the number of rounds the run will take at most. */
  onPlan?: (totalRounds: number) => void;
  /**
   * The fewest live peers the run may go on with (default 1): once a round ends with fewer,
   * the network stops after the next round and the run fails (`belowMinPeers` says why).
   */
  minPeers?: number;
}

export interface ClusterSummary {
  peers: number;
  outcomes: PeerOutcome[];
  rounds: number;
  epochs: number;
  stopReason: string | null;
  wallMs: number;
  /** Sums over every peer and round, ms. */
  phaseMs: Record<string, number>;
  /**
   * Share of each peer's round time spent outside its compute phase and check (0-1). On one
   * machine this includes waiting for the other peers' functions, which share its cores.
   */
  overheadShare: number;
  /**
   * Local platform: the share of the pool's capacity (workers x training time) that the
   * functions used. 1 - this is the time the machine spent on everything but function
   * compute: averaging, exchange, aggregation, update, bookkeeping. null elsewhere.
   */
  functionBusyShare: number | null;
  /** The compute backend the gradient functions reported (the plan's, when it fixes one). */
  computeBackend: string;
  trainingMs: number;
  bytesExchanged: number;
  /** Gradient invocations that answered, and how many built the model first (cold or new to the instance). */
  gradientInvocations: number;
  modelBuilds: number;
  estimatedCostUsd: number;
  checksums: string[];
  identical: boolean;
  lastValidationAccuracy: number | null;
  test: TestResult | null;
  parameters: number;
  /** The effective configuration: defaults, file and flags, after --rounds fitted it. */
  config: TrainingConfig;
  /** The files of the trained model, with `saveDir`. */
  saved?: string[];
  /** The charts `train --plot DIR` drew at the end. */
  plotted?: string[];
  /** Set when the live peers fell below `minPeers`: the round and the count. */
  belowMinPeers?: string;
}

/** Ctrl-C: every peer stops after the round after the one in progress. */
async function stopNetwork(owners: RedisLocation[]): Promise<void> {
  // A peer whose server is gone is not asked (the others drop it).
  const reached = await Promise.allSettled(owners.map((at) => connectRedis(at, { connectTimeoutMs: 2_000, failFast: true })));
  const clients = reached.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  try {
    await requestStop(clients, undefined, 1);
  } finally {
    await Promise.all(clients.map(closeRedis));
  }
}

/** Where the redis-servers listen: --bind, else the advertised host when it is an address, else loopback. */
function listenOn(o: ClusterOptions): string {
  return o.bind ?? (o.advertise && isIP(o.advertise) ? o.advertise : '127.0.0.1');
}

/** A server's address as the functions and the other peers use it: the advertised host, its port. */
function advertised(server: RedisServer, host?: string): string {
  if (!host) return server.url;
  const u = new URL(server.url);
  u.hostname = isIP(host) === 6 ? `[${host}]` : host;
  return u.toString().replace(/\/$/, '');
}

/** Peer ids of a local cluster: zero-padded, so id order is index order. */
const peerId = (i: number) => `peer-${String(i).padStart(2, '0')}`;

/** A beforePhase hook writing the model into dir/round-R before every Nth round R computes. */
function checkpointer(location: { url: string; password?: string }, dir: string, every: number, config: TrainingConfig, log?: (m: string) => void) {
  return async (phase: Phase, round: number): Promise<void> => {
    if (phase !== 'computing' || round === 0 || round % every !== 0) return;
    const c = await connectRedis(location);
    try {
      const r = await exportFromRedis(c, join(dir, `round-${round}`), { config });
      log?.(`checkpoint: the model before round ${r.round} in ${join(dir, `round-${round}`)} (checksum ${r.checksum})`);
    } finally {
      await closeRedis(c);
    }
  };
}

/** Redis data directory of peer `i` under `dir`, for runs that can be resumed. */
const peerDir = (dir: string, i: number) => `${dir}/peer-${i}`;

/**
 * `peerless train`: N redis-servers with the module and N peers on this machine, sharing
 * one function platform (the local worker pool: one pool, as peers of a real deployment
 * share their cloud's capacity). Peer 0 founds the network; the others join it for round 0.
 */
export async function runLocalCluster(o: ClusterOptions): Promise<ClusterSummary> {
  const t0 = performance.now();
  const servers: RedisServer[] = [];
  /** How this process enters each peer's Redis: as its owner. */
  const owners: RedisLocation[] = [];
  const peers: Peer[] = [];
  let metricsOut: WriteStream | undefined;
  const rounds: RoundMetrics[] = [];
  let belowMinPeers: string | undefined;
  checkLocalPeers(o.config, o.peers);
  if (o.minPeers !== undefined && (!Number.isInteger(o.minPeers) || o.minPeers < 1 || o.minPeers > o.peers)) {
    throw new Error(`--min-peers ${o.minPeers} must be between 1 and --peers (${o.peers})`);
  }
  try {
    if (o.metricsFile) {
      mkdirSync(dirname(o.metricsFile), { recursive: true });
      metricsOut = createWriteStream(o.metricsFile, { flags: o.resume ? 'a' : 'w' });
    }
    for (let i = 0; i < o.peers; i++) {
      const dir = o.dataDir ? peerDir(o.dataDir, i) : undefined;
      if (dir) mkdirSync(dir, { recursive: true });
      // Given on the command line at every start (a resume included), never stored with the data.
      const password = o.password ? randomBytes(24).toString('hex') : undefined;
      servers.push(await startRedisServer({
        dir, password, detached: true, tls: o.tls, host: listenOn(o),
        // A resumable run keeps its state on disk: AOF so every round's update survives.
        config: dir ? { appendonly: 'yes', appendfsync: 'no' } : {},
      }));
      owners.push({ url: servers[i]!.url, password });
    }

    // A resumed run continues with the configuration kept in the peers' Redis; a new run
    // in a used data directory starts from scratch. "auto" becomes the backend the local
    // functions loaded, so the plan fixes it.
    let config = o.config.backend === 'auto' && o.platform.computeBackend
      ? { ...o.config, backend: o.platform.computeBackend as TrainingConfig['backend'] }
      : o.config;
    const urls = new Map(servers.map((s, j) => [peerId(j), advertised(s, o.advertise)]));
    for (const [i, owner] of owners.entries()) {
      const c = await connectRedis(owner);
      try {
        const stored = await readPlan(c);
        if (o.resume) {
          if (!stored) throw new Error(`nothing to resume: ${o.dataDir}/peer-${i} holds no training state`);
          const mismatch = protocolMismatch(stored, `${o.dataDir}/peer-${i}`);
          if (mismatch) throw new Error(`cannot resume: ${mismatch}`);
          config = stored.config;
          await c.del([K.stopAt, K.stopRequest]);
          // The servers came back on new ports: point every member record at its server's.
          const members = new Membership(c);
          for (const m of await members.all()) {
            const url = urls.get(m.id);
            if (url) await members.put({ ...m, url });
          }
        } else if (stored) await c.flushAll();
      } finally {
        await closeRedis(c);
      }
    }

    const model = await prepareModel(config);
    for (let i = 0; i < o.peers; i++) {
      const location = owners[i]!;
      const client = await connectRedis(location);
      const data = await preparePeerData(client, config, { index: i, count: o.peers }, { storeTest: i === 0 && o.testEvaluation === true, skipIfStored: o.resume === true });
      await closeRedis(client);
      if (i === 0 && !o.resume) {
        // An explicit round count runs that many rounds (fitRounds), decided with the shard's size.
        const fitted = fitRounds(config, data.batches);
        config = fitted.config;
        if (fitted.note) o.onLog?.(fitted.note);
      }
      // The metrics file starts with the configuration the run uses (again at each resume).
      if (i === 0) metricsOut?.write(`${JSON.stringify({ type: 'config', at: new Date().toISOString(), resume: o.resume === true, config })}\n`);
      const peer = new Peer({
        id: peerId(i),
        redis: location,
        advertiseUrl: advertised(servers[i]!, o.advertise),
        networkPassword: o.password,
        platform: o.platform,
        model: model.info,
        data,
        shard: { index: i, count: o.peers },
        restoreData: async (c) => { await preparePeerData(c, config, { index: i, count: o.peers }, { storeTest: i === 0 && o.testEvaluation === true, skipIfStored: false }); },
        // Checkpoints from the first peer before it computes: its parameters stand still then.
        ...(i === 0 && o.checkpointEvery && o.saveDir ? { beforePhase: checkpointer(location, o.saveDir, o.checkpointEvery, config, o.onLog) } : {}),
        ...(i === 0 ? { found: { config, initialParams: model.initialParams, roundsPerEpoch: roundsPerEpoch(config, data.batches) } } : { bootstrap: { url: advertised(servers[0]!, o.advertise), fromRound: 0 } }),
      });
      peer.on('status', (s: PeerStatus) => o.onStatus?.(s));
      peer.on('log', (m: string) => o.onLog?.(m));
      peer.on('round', (m: RoundMetrics) => {
        if (m.members.length < (o.minPeers ?? 1) && belowMinPeers === undefined) {
          belowMinPeers = `round ${m.round} ended with ${m.members.length} live peer(s), below --min-peers ${o.minPeers}`;
          o.onLog?.(`${belowMinPeers}: stopping the network`);
          // The live members only: asking a dead server would hold the request up.
          void stopNetwork(owners.filter((_, j) => m.members.includes(peerId(j)))).catch(() => {});
        }
        rounds.push(m);
        metricsOut?.write(`${JSON.stringify({ type: 'round', at: new Date().toISOString(), ...m })}\n`);
        o.onRound?.(m);
      });
      await peer.start();
      peers.push(peer);
    }
    o.onPlan?.(totalRounds(config, peers[0].roundsPerEpoch));
    o.signal?.addEventListener('abort', () => { void stopNetwork(owners); }, { once: true });

    const billedBefore = o.platform.metrics().billedMs;
    const tTrain = performance.now();
    const outcomes = await Promise.all(peers.map((p) => p.run().then((x): PeerOutcome => ({ ...x, endedAt: Date.now() }))));
    const trainingMs = performance.now() - tTrain;
    const workers = o.platform instanceof LocalPlatform ? o.platform.workerThreadIds().length : 0;
    const busy = workers > 0 ? (o.platform.metrics().billedMs - billedBefore) / (workers * trainingMs) : null;
    // The replicas of the peers that finished (a failed peer's Redis may be gone with it).
    const checksums = (await Promise.all(peers.map((p, j) => (outcomes[j].state === 'failed' ? null : p.checksum().catch(() => null)))))
      .filter((c): c is string => c !== null);
    const test = o.testEvaluation ? await evaluateTestSet(o.platform, advertised(servers[0]!, o.advertise), config, model.info) : null;
    const summary: ClusterSummary = { ...summarize(o, outcomes, rounds, checksums, test, model.info.length, performance.now() - t0, peers[0].roundsPerEpoch), functionBusyShare: busy === null ? null : Math.min(1, busy), trainingMs, config,
      computeBackend: [...new Set(rounds.map((m) => m.backend).filter((b): b is string => Boolean(b)).flatMap((b) => b.split(',')))].sort().join(', ') || config.backend };
    if (belowMinPeers) summary.belowMinPeers = belowMinPeers;
    if (o.saveDir) {
      // The replicas are identical (checked by checksum): any peer's parameters are the model.
      const c = await connectRedis(owners[0]!);
      try {
        const params = await new InDbTensorStore(c).get(K.params);
        const built = await buildNetworkModel(config);
        const data = dataOf(config);
        try {
          summary.saved = await exportModel(o.saveDir, built, params,
            { samples: data.train.spec, scaling: data.scaling, ...(data.train.classNames ? { classNames: data.train.classNames } : {}), ...(data.targetScaling ? { targetScaling: data.targetScaling } : {}) },
            { checksum: checksums[0] ?? '', testAccuracy: test?.accuracy ?? null, rounds: summary.rounds, config });
        } finally {
          built.dispose();
        }
      } finally {
        await closeRedis(c);
      }
    }
    return summary;
  } finally {
    await Promise.allSettled(peers.map((p) => p.close()));
    await Promise.allSettled(servers.map((s) => s.stop()));
    await new Promise<void>((r) => (metricsOut ? metricsOut.end(() => r()) : r()));
  }
}

function summarize(
  o: ClusterOptions, outcomes: PeerOutcome[], rounds: RoundMetrics[], checksums: string[],
  test: TestResult | null, parameters: number, wallMs: number, roundsPerEpoch: number,
): Omit<ClusterSummary, 'functionBusyShare' | 'trainingMs' | 'computeBackend' | 'config'> {
  const phaseMs: Record<string, number> = { compute: 0, average: 0, exchange: 0, aggregate: 0, update: 0, verify: 0, check: 0 };
  let bytes = 0, overhead = 0, roundTime = 0, invocations = 0, modelBuilds = 0;
  for (const m of rounds) {
    invocations += m.invocations ?? 0;
    modelBuilds += m.modelBuilds ?? 0;
    phaseMs.compute += m.computeMs; phaseMs.average += m.averageMs; phaseMs.exchange += m.exchangeMs;
    phaseMs.aggregate += m.aggregateMs; phaseMs.update += m.updateMs; phaseMs.verify += m.verifyMs; phaseMs.check += m.checkMs;
    bytes += m.bytesReceived;
    // Everything but the wait for the round's gradients (the check's evaluation is function
    // work too). Gradients computed ahead run during the round before's end, counted here.
    overhead += m.roundMs - m.computeMs - m.checkMs;
    roundTime += m.roundMs - m.checkMs;
  }
  const lastRound = Math.max(0, ...outcomes.map((x) => x.rounds));
  const val = [...rounds].reverse().find((m) => m.validationAccuracy !== undefined)?.validationAccuracy ?? null;
  return {
    peers: o.peers,
    outcomes,
    rounds: lastRound,
    epochs: lastRound / roundsPerEpoch,
    stopReason: outcomes.find((x) => x.stopReason)?.stopReason ?? null,
    wallMs,
    phaseMs,
    overheadShare: roundTime > 0 ? overhead / roundTime : 0,
    bytesExchanged: bytes,
    gradientInvocations: invocations,
    modelBuilds,
    estimatedCostUsd: o.platform.metrics().estimatedCostUsd,
    checksums,
    identical: new Set(checksums).size === 1,
    lastValidationAccuracy: val,
    test,
    parameters,
  };
}
