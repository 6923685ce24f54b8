import type { Redis } from '../../tensor/redis-client.ts';
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

/**
 * The members of a round, as the round's coordinator decided them: every change of
 * membership (a join, a leave, a drop) takes effect at the start of `round` on every peer.
 */
export interface View {
  round: number;
  members: MemberRecord[];
  /** The last round to run, once a stop was asked for (src/peer/net/stop.ts). */
  stopAt?: number;
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
 * counts and from which it no longer does, so a round's members are derived from records.
 * Records change only through views decided by a round's coordinator (see `applyView`),
 * so every peer holds the same records for every round it takes part in.
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

  /**
   * Records a view: its members' records are taken as the coordinator wrote them, and every
   * other member still counted at `view.round` is marked gone from then on. One MULTI, so a
   * crash never leaves half a view.
   */
  async applyView(view: View): Promise<void> {
    const inView = new Set(view.members.map((m) => m.id));
    const tx = this.client.multi();
    for (const m of await this.all()) {
      if (!inView.has(m.id) && (m.leftAt === undefined || m.leftAt > view.round)) {
        tx.hSet(K.members, m.id, JSON.stringify({ ...m, leftAt: Math.max(m.fromRound, view.round) }));
      }
    }
    for (const m of view.members) tx.hSet(K.members, m.id, JSON.stringify(m));
    if (view.stopAt !== undefined) tx.set(K.stopAt, String(view.stopAt));
    await tx.exec();
  }
}

/**
 * The next round's view as a coordinator decides it: the round's members that reported,
 * less those that announced their leave, plus the admitted joiners (from the next round).
 */
export function nextView(round: number, members: MemberRecord[], stay: Set<string>, joiners: MemberRecord[]): View {
  const next = round + 1;
  const kept = members.filter((m) => stay.has(m.id) && !joiners.some((j) => j.id === m.id));
  const added = joiners.map((j) => ({ ...j, fromRound: next, leftAt: undefined }));
  return { round: next, members: [...kept, ...added].sort(byId) };
}
