import { afterAll, beforeAll } from 'vitest';
import { startRedisServer, type RedisServer } from '../../src/cluster/redis-server.ts';
import { prepareModel, preparePeerData } from '../../src/cluster/training-setup.ts';
import { roundsPerEpoch, type TrainingConfig } from '../../src/config/training.ts';
import { K } from '../../src/peer/net/keys.ts';
import { Peer } from '../../src/peer/peer.ts';
import { requestStop } from '../../src/peer/net/stop.ts';
import type { ModelInfo, PeerOptions, PeerOutcome, PeerStatus, RoundMetrics } from '../../src/peer/types.ts';
import { LocalPlatform } from '../../src/platform/local/local-platform.ts';
import type { FunctionPlatform } from '../../src/platform/platform.ts';
import { closeRedis, connectRedis, type Redis } from '../../src/tensor/redis-client.ts';
import { readTensorBytes } from '../../src/tensor/in-db.ts';

/** One in-process peer of a test network, with what it reported. */
export interface TestPeer {
  peer: Peer;
  rounds: RoundMetrics[];
  logs: string[];
  outcome?: Promise<PeerOutcome>;
}

/**
 * A network of in-process peers for tests: real redis-servers with the module (started once,
 * emptied between networks), real peers, and whatever platform the test gives them. Peer i
 * uses server i and is called `p` + two digits, so id order is index order.
 */
export class TestNetwork {
  readonly servers: RedisServer[] = [];
  readonly clients: Redis[] = [];
  private model?: { info: ModelInfo; initialParams: Float32Array };

  constructor(private readonly config: TrainingConfig, private readonly platform: FunctionPlatform) {}

  /** At least n clean redis-servers. */
  async reset(n: number): Promise<void> {
    while (this.servers.length < n) {
      const s = await startRedisServer();
      this.servers.push(s);
      this.clients.push(await connectRedis({ url: s.url }));
    }
    await Promise.all(this.clients.map((c) => c.flushAll()));
  }

  async makePeer(i: number, count: number, role: 'found' | 'join' | 'founding-group', extra: Pick<PeerOptions, 'beforePhase'> = {}): Promise<TestPeer> {
    this.model ??= await prepareModel(this.config);
    const data = await preparePeerData(this.clients[i], this.config, { index: i, count }, { storeTest: false, skipIfStored: false });
    const joinAt = role === 'founding-group' ? { fromRound: 0 } : {};
    const peer = new Peer({
      id: `p${String(i).padStart(2, '0')}`, redis: { url: this.servers[i].url }, platform: this.platform,
      model: this.model.info, data, shard: { index: i, count }, ...extra,
      restoreData: async (c) => { await preparePeerData(c, this.config, { index: i, count }, { storeTest: false, skipIfStored: false }); },
      ...(role === 'found'
        ? { found: { config: this.config, initialParams: this.model.initialParams, roundsPerEpoch: roundsPerEpoch(this.config, data.batches) } }
        : { bootstrap: { url: this.servers[0].url, ...joinAt } }),
    });
    const r: TestPeer = { peer, rounds: [], logs: [] };
    peer.on('round', (m: RoundMetrics) => r.rounds.push(m));
    peer.on('log', (l: string) => r.logs.push(l));
    return r;
  }

  async start(r: TestPeer): Promise<void> {
    await r.peer.start();
    r.outcome = r.peer.run();
  }

  /** n peers that found the network together (as `peerless train` does), all running. */
  async foundingGroup(n: number, extra: (i: number) => Pick<PeerOptions, 'beforePhase'> = () => ({})): Promise<TestPeer[]> {
    await this.reset(n);
    const peers: TestPeer[] = [];
    for (let i = 0; i < n; i++) {
      const p = await this.makePeer(i, n, i === 0 ? 'found' : 'founding-group', extra(i));
      await p.peer.start();
      peers.push(p);
    }
    for (const p of peers) p.outcome = p.peer.run();
    return peers;
  }

  /** Resolves once `r` enters `phase` in a round >= `minRound`: the peer's own phase event. */
  phase(r: TestPeer, phase: string, minRound = 0): Promise<number> {
    return awaitEvent(r, 'status', `entering ${phase} in a round >= ${minRound}`, (s: PeerStatus) => (s.phase === phase && s.round >= minRound ? s.round : undefined));
  }

  /** Resolves with the first log line of `r` (past or future) matching `pattern`. */
  log(r: TestPeer, pattern: RegExp): Promise<string> {
    const seen = r.logs.find((l) => pattern.test(l));
    if (seen) return Promise.resolve(seen);
    return awaitEvent(r, 'log', `logging ${String(pattern)}`, (l: string) => (pattern.test(l) ? l : undefined));
  }

  /** Resolves with the round of the first round `r` finishes with `members` members: an event. */
  roundWith(r: TestPeer, members: number): Promise<number> {
    return awaitEvent(r, 'round', `a round with ${members} members`, (m: RoundMetrics) => (m.members.length === members ? m.round : undefined));
  }

  /**
   * Starts the joiners one per round boundary while `founder`'s network runs: as soon as a
   * round counts the last joiner, the next one asks. Resolves once a round counts them all.
   */
  async joinOnePerRound(founder: TestPeer, joiners: TestPeer[]): Promise<void> {
    const starts: Promise<void>[] = [];
    let next = 0;
    const onRound = (m: RoundMetrics) => { if (m.members.length === next + 1 && next < joiners.length) starts.push(this.start(joiners[next++])); };
    founder.peer.on('round', onRound);
    await this.roundWith(founder, joiners.length + 1);
    founder.peer.off('round', onRound);
    await Promise.all(starts);
  }

  /** Asks the first n servers' peers to stop together and waits for every outcome. */
  async stop(peers: TestPeer[], n = peers.length): Promise<PeerOutcome[]> {
    await requestStop(this.clients.slice(0, n));
    return Promise.all(peers.map((r) => r.outcome!));
  }

  /** Peer i's parameters, as bytes. */
  async params(i: number): Promise<Float32Array> {
    const len = Number(await this.clients[i].strLen(K.params)) / 4;
    const b = await readTensorBytes(this.clients[i], K.params, 0, len);
    return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length));
  }

  async close(peers: TestPeer[] = []): Promise<void> {
    await Promise.all(peers.map((r) => r.peer.close()));
  }

  /** SIGKILLs peer i's redis-server (its data is gone with it). */
  async killServer(i: number): Promise<void> {
    await this.servers[i].kill();
  }

  /** Starts an empty redis-server again on peer i's port. */
  async restartServerEmpty(i: number): Promise<void> {
    this.servers[i] = await startRedisServer({ port: this.servers[i].port });
  }

  async dispose(): Promise<void> {
    await Promise.all(this.clients.map(closeRedis));
    await Promise.all(this.servers.map((s) => s.stop()));
  }
}

/**
 * A test network for a spec file, on one warm local platform (2 worker threads), set up and
 * torn down by the file's hooks. Returns a getter, valid inside tests.
 */
export function useTestNetwork(config: TrainingConfig): () => TestNetwork {
  let platform: LocalPlatform | undefined;
  let net: TestNetwork | undefined;
  beforeAll(async () => {
    platform = new LocalPlatform({ workers: 2 });
    await platform.warm();
    net = new TestNetwork(config, platform);
  });
  afterAll(async () => {
    await net?.dispose();
    await platform?.close();
  });
  return () => net!;
}

/**
 * The first `event` of `r`'s peer for which `match` gives a value. A peer that ends first (its
 * run settles) rejects it at once, saying how it ended: the test fails there, not at its timeout.
 */
function awaitEvent<E, T>(r: TestPeer, event: string, what: string, match: (e: E) => T | undefined): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let done = false;
    const hit = (e: E) => {
      const v = match(e);
      if (v === undefined || done) return;
      done = true;
      r.peer.off(event, hit);
      resolve(v);
    };
    r.peer.on(event, hit);
    const ended = (how: string) => {
      if (done) return;
      done = true;
      r.peer.off(event, hit);
      reject(new Error(`peer ${r.peer.id} ended before ${what}: ${how}`));
    };
    r.outcome?.then((o) => ended(`outcome ${JSON.stringify(o).slice(0, 300)}`), (err: unknown) => ended(`failed: ${(err as Error).message}`));
  });
}
