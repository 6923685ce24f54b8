import { afterEach, describe, expect, it } from 'vitest';
import { startRedisServer, type RedisServer } from '../../src/cluster/redis-server.ts';
import { K } from '../../src/peer/keys.ts';
import type { MemberRecord } from '../../src/peer/membership.ts';
import { closeRedis, connectRedis, type Redis } from '../../src/tensor/redis-client.ts';
import { networkStatus } from '../../src/cli/commands/status.ts';
import { stopNetwork } from '../../src/cli/commands/stop.ts';
import { NETWORK_FLAGS, spawnPeer, type PeerProcess } from './peer-process.ts';

/**
 * Networks of `peerless peer` processes, one per (simulated) machine, each with its own
 * real redis-server on loopback and its own local function pool: what a multi-host run
 * looks like, so a peer can be killed with SIGKILL and restarted for real.
 */
let servers: RedisServer[] = [];
let peers: PeerProcess[] = [];
let clients: Redis[] = [];

afterEach(async () => {
  for (const p of peers) p.kill();
  await Promise.all(clients.map(closeRedis));
  await Promise.all(servers.map((s) => s.stop()));
  servers = []; peers = []; clients = [];
});

async function network(n: number): Promise<void> {
  servers = await Promise.all(Array.from({ length: n }, () => startRedisServer()));
  clients = await Promise.all(servers.map((s) => connectRedis({ url: s.url })));
}

const round = async (i: number) => Number((await clients[i].get(K.round)) ?? -1);

async function untilRound(i: number, r: number, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while ((await round(i)) < r) {
    if (Date.now() > end) throw new Error(`peer ${i} did not reach round ${r} (at ${await round(i)}): ${peers[i]?.stderr()}`);
    await new Promise((res) => setTimeout(res, 100));
  }
}

function peer(i: number, extra: string[], id = `p${i}`): PeerProcess {
  const p = spawnPeer(id, ['--redis', servers[i].url, '--shard', `${i}/${servers.length}`, ...extra]);
  peers[i] = p;
  return p;
}

const founder = (rounds: number, deadline: number) => peer(0, [...NETWORK_FLAGS, '--rounds', String(rounds), '--deadline', String(deadline)]);
const joiner = (i: number) => peer(i, ['--bootstrap', servers[0].url]);

describe('a network of peer processes', () => {
  it('a peer killed with SIGKILL is dropped after the deadline; the others finish identical', async () => {
    await network(3);
    // The deadline must cover a joiner's cold first round on this shared machine.
    founder(100_000, 8000);
    joiner(1);
    joiner(2);
    await untilRound(2, 0);
    await untilRound(2, Number(await clients[2].get(K.round)) + 3);
    peers[2].kill('SIGKILL');
    const killedAt = await round(2);
    // The survivors go on past the deadline without it; then stop them cleanly.
    await untilRound(0, killedAt + 4);
    await stopNetwork(servers[0].url, undefined, undefined, true);
    const [a, b] = await Promise.all([peers[0].outcome, peers[1].outcome]);
    expect(a?.state, peers[0].stderr()).toBe('done');
    expect(b?.state, `${peers[1].stderr()} ${b?.error}`).toBe("done");
    expect(a?.checksum).toBe(b?.checksum);
    const p2 = JSON.parse(String(await clients[0].hGet(K.members, 'p2'))) as MemberRecord;
    expect(p2.leftAt).toBeGreaterThanOrEqual(8);
    expect(peers[0].stderr()).toMatch(/dropping p2/);
  });

  it('a peer that joins mid-run catches up and ends identical', async () => {
    await network(3);
    founder(100_000, 20_000);
    joiner(1);
    await untilRound(0, 6);
    joiner(2);
    // Once the newcomer has run a few rounds with the others, stop the network cleanly.
    await untilRound(2, 0);
    const from = Number((await clients[2].get(K.round)) ?? 0);
    await untilRound(2, from + 3);
    // `peerless status` from any peer's Redis sees all three, active, with their state.
    const status = await networkStatus(servers[1].url, undefined, true);
    expect(status.map((r) => [r.id, r.member, r.reachable])).toEqual([['p0', 'active', true], ['p1', 'active', true], ['p2', 'active', true]]);
    for (const r of status) expect(r.state?.round).toBeGreaterThanOrEqual(from);
    await stopNetwork(servers[0].url, undefined, undefined, true);
    const outcomes = await Promise.all(peers.map((p) => p.outcome));
    for (const [i, o] of outcomes.entries()) expect(o?.state, peers[i].stderr()).toBe('done');
    expect(new Set(outcomes.map((o) => o?.checksum)).size).toBe(1);
    const p2 = JSON.parse(String(await clients[0].hGet(K.members, 'p2'))) as MemberRecord;
    expect(p2.fromRound).toBeGreaterThanOrEqual(7);
  });

  it('a restarted peer process resumes from the state in its Redis', async () => {
    await network(3);
    founder(100_000, 30_000);
    joiner(1);
    joiner(2);
    await untilRound(1, 8);
    peers[1].kill('SIGKILL');
    const at = await round(1);
    // Same id, same Redis: no bootstrap needed, the peer resumes from its own state.
    peer(1, []);
    await untilRound(1, at + 3);
    await stopNetwork(servers[0].url, undefined, undefined, true);
    const outcomes = await Promise.all(peers.map((p) => p.outcome));
    for (const [i, o] of outcomes.entries()) expect(o?.state, peers[i].stderr()).toBe('done');
    expect(new Set(outcomes.map((o) => o?.checksum)).size).toBe(1);
    expect(peers[1].stderr()).toMatch(new RegExp(`resumed at round (${at}|${at - 1})`));
    // Nobody was dropped: the restart came back within the deadline.
    for (const c of clients) {
      const members = Object.values(await c.hGetAll(K.members)).map((v) => JSON.parse(String(v)) as MemberRecord);
      expect(members.filter((m) => m.leftAt !== undefined)).toEqual([]);
    }
  });
});
