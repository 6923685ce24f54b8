import type { Redis } from '../tensor/redis-client.ts';
import { K } from './keys.ts';

/** A member as every peer records it in its own Redis. */
export interface MemberRecord {
  id: string;
  /** Address of the member's Redis: how other peers reach it. */
  url: string;
  /** First round the member takes part in. */
  fromRound: number;
  /** First round it no longer takes part in (left or dropped). */
  leftAt?: number;
  shard?: { index: number; count: number };
}

/** Canonical order of peers: byte-wise by id, the order aggregation reduces in. */
export function byId(a: { id: string }, b: { id: string }): number {
  return Buffer.compare(Buffer.from(a.id), Buffer.from(b.id));
}

export function isActive(m: MemberRecord, round: number): boolean {
  return m.fromRound <= round && (m.leftAt === undefined || round < m.leftAt);
}

/**
 * The membership as this peer sees it, kept in its own Redis so a restarted peer knows its
 * network. Changes take effect at round boundaries: a record says from which round a member
 * counts and from which it no longer does, so every peer derives the same member list for a
 * round from the same records.
 */
export class Membership {
  constructor(private readonly client: Redis) {}

  async all(): Promise<MemberRecord[]> {
    const raw = await this.client.hGetAll(K.members);
    return Object.values(raw).map((v) => JSON.parse(String(v)) as MemberRecord).sort(byId);
  }

  async activeAt(round: number): Promise<MemberRecord[]> {
    return (await this.all()).filter((m) => isActive(m, round));
  }

  async put(m: MemberRecord): Promise<void> {
    await this.client.hSet(K.members, m.id, JSON.stringify(m));
  }

  /** Marks members as gone from `round` on (never moves an earlier leave later). */
  async drop(ids: string[], round: number): Promise<void> {
    const all = await this.all();
    for (const m of all) {
      if (ids.includes(m.id) && (m.leftAt === undefined || m.leftAt > round)) await this.put({ ...m, leftAt: round });
    }
  }
}
