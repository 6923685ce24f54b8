import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedisServer, type RedisServer } from '../../cluster/redis-server.ts';
import { closeRedis, connectRedis, type Redis } from '../../tensor/redis-client.ts';
import { agree, holdsQuorum, quorumBase, type RoundReport } from './agreement.ts';
import { Inbox } from './inbox.ts';
import { K } from './keys.ts';
import { PeerLinks } from './links.ts';
import type { MemberRecord } from './membership.ts';

const members = (n: number): MemberRecord[] => Array.from({ length: n }, (_, i) => ({ id: `p${i}`, url: `redis://h${i}:6379`, fromRound: 0 }));

describe('the quorum a round\'s view is decided with', () => {
  it('is more than half of the members, or half with the lowest id: two sides of a cut never both hold it', () => {
    const three = members(3), two = members(2), four = members(4);
    expect(holdsQuorum(new Set(['p0', 'p1']), three)).toBe(true);
    expect(holdsQuorum(new Set(['p1', 'p2']), three)).toBe(true);
    expect(holdsQuorum(new Set(['p2']), three)).toBe(false);
    expect(holdsQuorum(new Set(['p0']), two)).toBe(true);
    expect(holdsQuorum(new Set(['p1']), two)).toBe(false);
    expect(holdsQuorum(new Set(['p0', 'p3']), four)).toBe(true);
    expect(holdsQuorum(new Set(['p1', 'p2']), four)).toBe(false);
    // Every split of four members: exactly one side holds it.
    for (let mask = 0; mask < 16; mask++) {
      const side = new Set(four.filter((_, i) => mask & (1 << i)).map((m) => m.id));
      const other = new Set(four.filter((m) => !side.has(m.id)).map((m) => m.id));
      expect(holdsQuorum(side, four) !== holdsQuorum(other, four)).toBe(true);
    }
  });

  it('counts only members that took part in an earlier round: newcomers cannot outvote the peer that admitted them', () => {
    const m = [{ id: 'p0', url: 'a', fromRound: 0 }, { id: 'p1', url: 'b', fromRound: 4 }, { id: 'p2', url: 'c', fromRound: 4 }];
    expect(quorumBase(m, 4).map((x) => x.id)).toEqual(['p0']);
    expect(holdsQuorum(new Set(['p0']), quorumBase(m, 4))).toBe(true);
    expect(holdsQuorum(new Set(['p1', 'p2']), quorumBase(m, 4))).toBe(false);
    expect(quorumBase(m, 5)).toHaveLength(3);
    expect(quorumBase([{ id: 'p0', url: 'a', fromRound: 0 }], 0)).toHaveLength(1);
  });
});

describe('a peer taking over from a coordinator given up on (a real redis-server)', () => {
  let server: RedisServer;
  let local: Redis;
  let inbox: Inbox;
  let links: PeerLinks;
  beforeAll(async () => {
    server = await startRedisServer();
    local = await connectRedis({ url: server.url });
    inbox = new Inbox(local);
    await inbox.start();
    links = new PeerLinks();
  });
  afterAll(async () => {
    await inbox.stop();
    await links.close();
    await closeRedis(local);
    await server.stop();
  });

  it('follows the given-up coordinator\'s view when it came after all, and sends no second view of the round', async () => {
    const m = members(3);
    const round = 7;
    // p0 was only slow: its view (all three stay) is in p1's Redis by the time p1 takes over; p2 reported.
    const p0View = { round: round + 1, members: m };
    await local.set(K.report(round, 'p0'), JSON.stringify({ checksum: 'c0', leaving: false, view: p0View } satisfies RoundReport));
    await local.set(K.report(round, 'p2'), JSON.stringify({ checksum: 'c0', leaving: false } satisfies RoundReport));
    const said: string[] = [];
    const a = await agree({
      round, me: 'p1', members: m, suspects: new Set(['p0']), report: { checksum: 'c0', leaving: false }, layoutHash: 'h',
      deadlineMs: 2_000, local, links, inbox, log: (s) => said.push(s),
    });
    expect(a.reference.id).toBe('p0');
    expect(a.view).toEqual(p0View);
    expect(said.join('\n')).toMatch(/p0's view came after all; following it/);
    // p1's own report carries no view of its own.
    expect((JSON.parse(String(await local.get(K.report(round, 'p1')))) as RoundReport).view).toBeUndefined();
  });
});
