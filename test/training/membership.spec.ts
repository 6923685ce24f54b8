import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedisServer, type RedisServer } from '../../src/cluster/redis-server.ts';
import { prepareModel, preparePeerData } from '../../src/cluster/training-setup.ts';
import { parseTrainingConfig, roundsPerEpoch } from '../../src/config/training.ts';
import { K } from '../../src/peer/keys.ts';
import { Peer } from '../../src/peer/peer.ts';
import { requestStop } from '../../src/peer/stop.ts';
import type { ModelInfo, PeerOutcome, RoundMetrics } from '../../src/peer/types.ts';
import { LocalPlatform } from '../../src/platform/local/local-platform.ts';
import { closeRedis, connectRedis, type Redis } from '../../src/tensor/redis-client.ts';

/**
 * Membership converges: peers that join at the same moment, or one in every round, end in
 * one agreed membership, with identical parameters and nothing to repair. In-process peers
 * (real redis-servers, the real local platform of worker threads), so the joins can be
 * repeated many times within the suite's time.
 */
const config = parseTrainingConfig({
  model: { name: 'cnn', width: 0.25 }, dataset: 'synthetic', syntheticSize: 2048, batchSize: 32, batchesPerRound: 1,
  epochs: 1000, checkEvery: 1000, validationSize: 0, optimizer: { kind: 'adam', lr: 0.003 }, seed: 5, deadlineMs: 30_000,
});

let platform: LocalPlatform;
let model: { info: ModelInfo; initialParams: Float32Array };
const servers: RedisServer[] = [];
const clients: Redis[] = [];

beforeAll(async () => {
  platform = new LocalPlatform({ workers: 2 });
  await platform.warm();
  model = await prepareModel(config);
});

afterAll(async () => {
  await Promise.all(clients.map(closeRedis));
  await Promise.all(servers.map((s) => s.stop()));
  await platform?.close();
});

/** At least n clean redis-servers (started once, emptied between networks). */
async function cleanServers(n: number): Promise<void> {
  while (servers.length < n) {
    const s = await startRedisServer();
    servers.push(s);
    clients.push(await connectRedis({ url: s.url }));
  }
  await Promise.all(clients.map((c) => c.flushAll()));
}

interface Running { peer: Peer; rounds: RoundMetrics[]; logs: string[]; outcome?: Promise<PeerOutcome> }

async function makePeer(i: number, count: number, founder: boolean): Promise<Running> {
  const data = await preparePeerData(clients[i], config, { index: i, count }, { storeTest: false, skipIfStored: false });
  const peer = new Peer({
    id: `p${String(i).padStart(2, '0')}`, redis: { url: servers[i].url }, platform, model: model.info, data, shard: { index: i, count },
    ...(founder
      ? { found: { config, initialParams: model.initialParams, roundsPerEpoch: roundsPerEpoch(config, data.batches) } }
      : { bootstrap: { url: servers[0].url } }),
  });
  const r: Running = { peer, rounds: [], logs: [] };
  peer.on('round', (m: RoundMetrics) => r.rounds.push(m));
  peer.on('log', (l: string) => r.logs.push(l));
  return r;
}

const start = async (r: Running) => { await r.peer.start(); r.outcome = r.peer.run(); };

/** Resolves once `r` has finished a round with `members` members: an event, not a moment. */
function roundWith(r: Running, members: number): Promise<number> {
  return new Promise((resolve) => {
    const hit = (m: RoundMetrics) => { if (m.members.length === members) { r.peer.off('round', hit); resolve(m.round); } };
    r.peer.on('round', hit);
  });
}

/** Stops the network after the next round boundary and checks it ended as one. */
async function stopAndCheck(all: Running[], n: number): Promise<void> {
  await requestStop(clients.slice(0, n));
  const outcomes = await Promise.all(all.map((r) => r.outcome!));
  for (const [i, o] of outcomes.entries()) expect(o.state, `${o.error} ${all[i].logs.join('\n')}`).toBe('done');
  expect(new Set(outcomes.map((o) => o.checksum)).size).toBe(1);
  const records = await Promise.all(clients.slice(0, n).map((c) => c.hGetAll(K.members)));
  for (const rec of records) expect(rec).toEqual(records[0]);
  expect(Object.keys(records[0])).toHaveLength(n);
  for (const r of all) {
    expect(r.rounds.filter((m) => m.repaired || m.dropped.length > 0)).toEqual([]);
    expect(r.logs.filter((l) => /repairing|dropped|missed the/.test(l))).toEqual([]);
  }
  await Promise.all(all.map((r) => r.peer.close()));
}

describe('membership that converges', () => {
  it('3 peers that join one bootstrap at the same moment always agree, 10 times out of 10', async () => {
    for (let attempt = 0; attempt < 10; attempt++) {
      await cleanServers(4);
      const founder = await makePeer(0, 4, true);
      await start(founder);
      const joiners = await Promise.all([1, 2, 3].map((i) => makePeer(i, 4, false)));
      const together = roundWith(founder, 4);
      await Promise.all(joiners.map(start));
      // Each was admitted at a round boundary (the same one or not): a round counts all four.
      await together;
      await stopAndCheck([founder, ...joiners], 4);
    }
  });

  it('a join in every round for 20 rounds: every peer ends in the same membership, identical', async () => {
    const n = 21;
    await cleanServers(n);
    const founder = await makePeer(0, n, true);
    await start(founder);
    const joiners = await Promise.all(Array.from({ length: n - 1 }, (_, k) => makePeer(k + 1, n, false)));
    // As soon as a round counts the last joiner, the next one asks: one join per round boundary,
    // while the network runs.
    const starts: Promise<void>[] = [];
    let next = 0;
    const onRound = (m: RoundMetrics) => { if (m.members.length === next + 1 && next < joiners.length) starts.push(start(joiners[next++])); };
    founder.peer.on('round', onRound);
    await roundWith(founder, n);
    founder.peer.off('round', onRound);
    await Promise.all(starts);
    const froms = await Promise.all(joiners.map(async (j) => JSON.parse(String(await clients[0].hGet(K.members, j.peer.id))).fromRound as number));
    expect(new Set(froms).size).toBe(n - 1);
    await stopAndCheck([founder, ...joiners], n);
  });
});
