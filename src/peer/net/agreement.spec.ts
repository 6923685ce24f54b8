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
    const holds = (ids: string[], m: MemberRecord[]) => holdsQuorum(new Set(ids), m, 5);
    expect(holds(['p0', 'p1'], three)).toBe(true);
    expect(holds(['p1', 'p2'], three)).toBe(true);
    expect(holds(['p2'], three)).toBe(false);
    expect(holds(['p0'], two)).toBe(true);
    expect(holds(['p1'], two)).toBe(false);
    expect(holds(['p0', 'p3'], four)).toBe(true);
    expect(holds(['p1', 'p2'], four)).toBe(false);
    // Every split of four members: exactly one side holds it.
    for (let mask = 0; mask < 16; mask++) {
      const side = four.filter((_, i) => mask & (1 << i)).map((m) => m.id);
      const other = four.filter((m) => !side.includes(m.id)).map((m) => m.id);
      expect(holds(side, four) !== holds(other, four)).toBe(true);
    }
  });

  it('counts members established before the round first: newcomers cannot outvote the peer that admitted them', () => {
    const m = [{ id: 'p0', url: 'a', fromRound: 0 }, { id: 'p1', url: 'b', fromRound: 4 }, { id: 'p2', url: 'c', fromRound: 4 }];
    expect(quorumBase(m, 4).map((x) => x.id)).toEqual(['p0']);
    expect(holdsQuorum(new Set(['p0']), m, 4)).toBe(true);
    expect(holdsQuorum(new Set(['p1', 'p2']), m, 4)).toBe(false);
    expect(quorumBase(m, 5)).toHaveLength(3);
    expect(quorumBase([{ id: 'p0', url: 'a', fromRound: 0 }], 0)).toHaveLength(1);
  });

  it('lets a newcomer that answered break a tie among the established: a coordinator lost just after a readmission leaves a quorum', () => {
    // p1 was readmitted from round 41; p0, the coordinator, was killed in that round.
    const m = [{ id: 'p0', url: 'a', fromRound: 1 }, { id: 'p1', url: 'b', fromRound: 41 }, { id: 'p2', url: 'c', fromRound: 1 }];
    expect(holdsQuorum(new Set(['p1', 'p2']), m, 41)).toBe(true);
    expect(holdsQuorum(new Set(['p2']), m, 41)).toBe(false);
    expect(holdsQuorum(new Set(['p0']), m, 41)).toBe(false);
    expect(holdsQuorum(new Set(['p0', 'p1']), m, 41)).toBe(true);
    expect(holdsQuorum(new Set(['p0', 'p2']), m, 41)).toBe(true);
  });

  it('is never held by two disjoint sides, whichever members are newcomers (every split of up to six members)', () => {
    for (let n = 1; n <= 6; n++) {
      for (let newcomers = 0; newcomers < 1 << n; newcomers++) {
        const m = Array.from({ length: n }, (_, i) => ({ id: `p${i}`, url: `u${i}`, fromRound: newcomers & (1 << i) ? 7 : 2 }));
        // Each member on side A, side B, or neither (cut off from both).
        for (let split = 0; split < 3 ** n; split++) {
          const a = new Set<string>(), b = new Set<string>();
          for (let i = 0, s = split; i < n; i++, s = Math.floor(s / 3)) {
            if (s % 3 === 1) a.add(`p${i}`);
            if (s % 3 === 2) b.add(`p${i}`);
          }
          const both = holdsQuorum(a, m, 7) && holdsQuorum(b, m, 7);
          if (both) throw new Error(`n=${n} newcomers=${newcomers.toString(2)}: both ${[...a]} and ${[...b]} hold a quorum`);
        }
        // With every member on one side or the other, one side always holds it.
        for (let mask = 0; mask < 1 << n; mask++) {
          const a = new Set(m.filter((_, i) => mask & (1 << i)).map((x) => x.id));
          const b = new Set(m.filter((x) => !a.has(x.id)).map((x) => x.id));
          expect(holdsQuorum(a, m, 7) || holdsQuorum(b, m, 7)).toBe(true);
        }
      }
    }
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

  it('readmitted at this boundary, it takes over from a dead coordinator with the one established member left, and both go on', async () => {
    // p0 readmitted p1 from round 41 and was killed in that round; p2 reported to p1.
    const round = 41;
    const m = [{ id: 'p0', url: 'redis://h0:6379', fromRound: 1 }, { id: 'p1', url: 'redis://h1:6379', fromRound: 41 }, { id: 'p2', url: 'redis://h2:6379', fromRound: 1 }];
    await local.set(K.report(round, 'p2'), JSON.stringify({ checksum: 'c0', leaving: false } satisfies RoundReport));
    const a = await agree({
      round, me: 'p1', members: m, suspects: new Set(['p0']), report: { checksum: 'c0', leaving: false }, layoutHash: 'h',
      deadlineMs: 500, local, links, inbox, log: () => {},
    });
    expect(a.reference.id).toBe('p1');
    expect(a.view.round).toBe(round + 1);
    expect(a.view.members.filter((x) => x.leftAt === undefined || x.leftAt > round + 1).map((x) => x.id)).toEqual(['p1', 'p2']);
  });
});
