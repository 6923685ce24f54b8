import { describe, expect, it } from 'vitest';
import { holdsQuorum, quorumBase } from './agreement.ts';
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
