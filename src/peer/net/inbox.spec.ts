import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { commandCounts } from '../../../bench/server-cpu.ts';
import { startRedisServer, type RedisServer } from '../../cluster/redis-server.ts';
import { closeRedis, connectRedis, type Redis } from '../../tensor/redis-client.ts';
import { Inbox } from './inbox.ts';
import { K } from './keys.ts';

/** EXISTS calls the server ran since the last CONFIG RESETSTAT: the inbox's probes. */
async function existsCalls(c: Redis): Promise<number> {
  return (await commandCounts(c)).get('EXISTS')?.calls ?? 0;
}

describe('the inbox (a real redis-server)', () => {
  let server: RedisServer;
  let local: Redis;
  let other: Redis;
  let inbox: Inbox;
  beforeAll(async () => {
    server = await startRedisServer();
    local = await connectRedis({ url: server.url });
    other = await connectRedis({ url: server.url });
    inbox = new Inbox(local);
    await inbox.start();
  });
  afterAll(async () => {
    await inbox.stop();
    await Promise.all([closeRedis(local), closeRedis(other)]);
    await server.stop();
  });
  beforeEach(async () => {
    await local.sendCommand(['CONFIG', 'RESETSTAT']);
  });

  /** What a sender does: the value, then its name on the inbox channel, on one connection. */
  const deliver = async (key: string) => {
    await other.set(key, '1');
    await other.publish(K.inbox, key);
  };

  it('takes an announced key as present without asking the server again: one probe of each key, at the start', async () => {
    const keys = ['r:1:a', 'r:1:b', 'r:1:c'];
    // No poll in the test's time: only the first probe and the announcements can settle the keys.
    const waiting = inbox.waitFor(keys, 600_000, { pollMs: 600_000 });
    for (const k of keys) await deliver(k);
    expect(await waiting).toEqual({ present: keys, missing: [] });
    expect(await existsCalls(local)).toBe(keys.length);
  });

  it('stops waiting for a key whose withdrawal is announced, and counts it missing', async () => {
    const waiting = inbox.waitFor(['r:2:a'], 600_000, { pollMs: 600_000, withdrawn: (k) => `${k}:gone` });
    await deliver('r:2:a:gone');
    expect(await waiting).toEqual({ present: [], missing: ['r:2:a'] });
    expect(await existsCalls(local)).toBe(2); // the key and its withdrawal, once
  });

  it('does not trust an announcement from before the wait: a key name used again (a second admission) must be there', async () => {
    await deliver('peerless:test-admission');
    expect((await inbox.waitFor(['peerless:test-admission'], 600_000)).present).toEqual(['peerless:test-admission']);
    await local.del('peerless:test-admission');
    // The old announcement says nothing of the key now: it is missing when the wait ends.
    expect(await inbox.waitFor(['peerless:test-admission'], 300, { pollMs: 50 })).toEqual({ present: [], missing: ['peerless:test-admission'] });
  });

  it('finds a key written without an announcement by its periodic probe', async () => {
    const waiting = inbox.waitFor(['r:3:quiet'], 600_000, { pollMs: 20 });
    await other.set('r:3:quiet', '1');
    expect(await waiting).toEqual({ present: ['r:3:quiet'], missing: [] });
  });
});
