import { afterEach, describe, expect, it } from 'vitest';
import { startRedisServer, type RedisServer } from '../../src/cluster/redis-server.ts';
import { stopNetwork } from '../../src/cli/commands/stop.ts';
import { K } from '../../src/peer/net/keys.ts';
import type { MemberRecord } from '../../src/peer/net/membership.ts';
import type { Phase } from '../../src/peer/round-machine.ts';
import { closeRedis, connectRedis, type Redis } from '../../src/tensor/redis-client.ts';
import { NETWORK_FLAGS, spawnPeer, type PeerProcess } from '../training/peer-process.ts';

/**
 * SIGKILL a peer process at every phase of a round (issue 10's fault harness): three
 * `peerless peer` processes with their own redis-servers; p2 is told to stop before a given
 * phase (PEERLESS_TEST_PAUSE_AT: the phase is chosen by the peer's own event, not a timer),
 * says so, and is killed there. The survivors must drop it at the deadline and finish every
 * round identical; restarted on its Redis, it must find out it was dropped, rejoin, and end
 * identical too. Each wait is for an event, bounded against a hang.
 */
let servers: RedisServer[] = [];
let peers: PeerProcess[] = [];
let clients: Redis[] = [];

afterEach(async () => {
  for (const p of peers) p?.kill();
  await Promise.all(clients.map(closeRedis));
  await Promise.all(servers.map((s) => s.stop()));
  servers = []; peers = []; clients = [];
});

const round = async (i: number) => Number((await clients[i].get(K.round)) ?? -1);

async function untilRound(i: number, r: number, boundMs = 180_000): Promise<void> {
  const end = Date.now() + boundMs;
  while ((await round(i)) < r) {
    if (Date.now() > end) throw new Error(`peer ${i} did not reach round ${r} (at ${await round(i)}): ${peers[i]?.stderr()}`);
    await new Promise((res) => setTimeout(res, 50));
  }
}

function peer(i: number, extra: string[], env: Record<string, string> = {}): PeerProcess {
  const p = spawnPeer(`p${i}`, ['--redis', servers[i].url, '--shard', `${i}/${servers.length}`, ...extra], env);
  peers[i] = p;
  return p;
}

const PHASES: Phase[] = ['computing', 'averaging', 'exchanging', 'aggregating', 'updating', 'verifying', 'checking'];

describe('a peer process killed at each phase of a round', () => {
  it.each(PHASES)('before %s: dropped, the others identical; restarted, it rejoins and ends identical', async (phase) => {
    servers = await Promise.all([0, 1, 2].map(() => startRedisServer()));
    clients = await Promise.all(servers.map((s) => connectRedis({ url: s.url })));
    // Checks every 3 rounds, so "checking" comes round too (nothing to evaluate: validation 0).
    peer(0, [...NETWORK_FLAGS, '--check-every', '3', '--rounds', '100000', '--deadline', '4000']);
    peer(1, ['--bootstrap', servers[0].url]);
    peer(2, ['--bootstrap', servers[0].url], { PEERLESS_TEST_PAUSE_AT: `${phase}:4` });
    const paused = await peers[2].line(new RegExp(`paused before ${phase} of round \\d+`));
    const killedIn = Number(/round (\d+)/.exec(paused)![1]);
    peers[2].kill('SIGKILL');
    expect(await peers[2].outcome).toBeNull();

    // The survivors drop it at their deadline and go on together.
    await peers[0].line(/p2 dropped from round/);
    const leftAt = (JSON.parse(String(await clients[0].hGet(K.members, 'p2'))) as MemberRecord).leftAt!;
    expect(leftAt).toBeGreaterThanOrEqual(killedIn);
    await untilRound(0, leftAt + 2);

    // Restarted on its own Redis, it learns it was dropped and rejoins.
    peer(2, []);
    const rejoined = Number(/from round (\d+)/.exec(await peers[2].line(/joined through \S+ from round \d+/))![1]);
    await untilRound(2, rejoined + 2);

    await stopNetwork(servers[0].url, undefined, undefined, true);
    const outcomes = await Promise.all(peers.map((p) => p.outcome));
    for (const [i, o] of outcomes.entries()) expect(o?.state, peers[i].stderr()).toBe('done');
    expect(new Set(outcomes.map((o) => o?.checksum)).size).toBe(1);
    // One membership on every peer, with p2 active again.
    const records = await Promise.all(clients.map((c) => c.hGetAll(K.members)));
    for (const r of records) expect(r).toEqual(records[0]);
    expect((JSON.parse(records[0].p2) as MemberRecord).leftAt).toBeUndefined();
  });
});
