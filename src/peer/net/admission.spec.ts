import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedisServer, type RedisServer } from '../../cluster/redis-server.ts';
import { closeRedis, connectRedis, type Redis } from '../../tensor/redis-client.ts';
import { admit } from './admission.ts';
import { K } from './keys.ts';
import { Membership, nextView } from './membership.ts';

/** A coordinator's Redis and a joiner's, real redis-servers. */
let servers: RedisServer[];
let coordinator: Redis;
let joiner: Redis;

beforeAll(async () => {
  servers = [await startRedisServer(), await startRedisServer()];
  [coordinator, joiner] = await Promise.all(servers.map((s) => connectRedis({ url: s.url })));
});

afterAll(async () => {
  await Promise.all([coordinator, joiner].map(closeRedis));
  await Promise.all(servers.map((s) => s.stop()));
});

describe('admission', () => {
  it('gives the joiner the records of the round that ended, also of a member the view drops, and its members as prepared', async () => {
    const a = { id: 'a', url: 'redis://127.0.0.1:7001', fromRound: 0 };
    const b = { id: 'b', url: 'redis://127.0.0.1:7002', fromRound: 2 };
    const c = { id: 'c', url: 'redis://127.0.0.1:7003', fromRound: 0 };
    const d = { id: 'd', url: servers[1].url, fromRound: 0 };
    const records = new Membership(coordinator);
    for (const m of [a, b, c]) await records.put(m);
    // Round 4 ends: c did not report and is dropped, d is admitted from round 5.
    const view = nextView(4, [a, b, c], new Set(['a', 'b']), [d]);
    await records.applyView(view);
    await coordinator.set(K.roundMembers, JSON.stringify({ round: 4, ids: ['a', 'b', 'c'] }));
    await admit(coordinator, joiner, { member: d, layoutHash: 'h', nonce: 'n1' }, view);
    // And the members of round 4 as the coordinator prepared it (optimizer-slices.ts).
    expect(await joiner.get(K.roundMembers)).toBe(JSON.stringify({ round: 4, ids: ['a', 'b', 'c'] }));
    const joined = new Membership(joiner);
    // The members of round 4 are those every other peer has: exchange 'sharded-step' lays the
    // optimizer state out by them.
    expect((await joined.activeAt(4)).map((m) => m.id)).toEqual(['a', 'b', 'c']);
    expect((await joined.activeAt(5)).map((m) => m.id)).toEqual(['a', 'b', 'd']);
    expect(await joined.all()).toEqual(await records.all());
  });
});
