import type { OptimizerConfig } from '../../config/training.ts';
import type { Redis } from '../../tensor/redis-client.ts';
import { ensureTensor, streamTensor, writeChunks } from '../../tensor/transfer.ts';
import { sliceRanges } from '../round/exchange.ts';
import { K } from './keys.ts';
import type { PeerLinks } from './links.ts';
import { isActive, type MemberRecord } from './membership.ts';

/** The optimizer's tensors, which exchange 'sharded-step' keeps one slice of at each peer. */
export function optimizerTensors(o: OptimizerConfig): string[] {
  return o.kind === 'adam' ? [K.adamM, K.adamV] : [K.velocity];
}

export interface ReshardInput {
  round: number;
  me: string;
  /** The round's members, in canonical order: the new owners. */
  members: MemberRecord[];
  /** The round before's members: the owners whose slices the optimizer state is in. */
  before: MemberRecord[];
  length: number;
  optimizer: OptimizerConfig;
  local: Redis;
  links: PeerLinks;
  deadlineMs: number;
  chunkElements: number;
  log(msg: string): void;
}

export interface ReshardResult {
  /** Elements of this peer's new slice fetched from their previous owners (per tensor). */
  fetched: number;
  /** Elements whose previous owner could not be reached: their state starts again from zero. */
  lost: number;
}

/**
 * Exchange 'sharded-step' keeps the optimizer state of a slice only at the slice's owner. When a
 * round's members differ from those the state is laid out for (`K.optimizerLayout`), this peer
 * fetches the state of its new slice from the previous owners, range by range and from all of
 * them at once, into its own full-size tensors at the same offsets. A previous owner that does
 * not deliver within half a deadline (it died, or left and took its Redis) loses its part: the
 * connection to it is closed, so nothing of it lands later, and those elements restart from zero
 * state (momentum 0, Adam's moments 0), said in the log. Half a deadline, so that this peer still
 * delivers its part of the round's exchange in time. The layout is recorded last, so a restart
 * halfway fetches again from sources that did not change (each previous owner now writes only its
 * own new slice, disjoint from this one).
 */
export async function reshardOptimizerState(x: ReshardInput): Promise<ReshardResult | null> {
  const layout = JSON.stringify(x.members.map((m) => m.id));
  if ((await x.local.get(K.optimizerLayout)) === layout) return null;
  const tensors = optimizerTensors(x.optimizer);
  const result: ReshardResult = { fetched: 0, lost: 0 };
  const index = x.members.findIndex((m) => m.id === x.me);
  // Before the first round there is no state to move: the first step creates it.
  if (index >= 0 && x.before.length > 0) {
    const mine = sliceRanges(x.length, x.members.length)[index];
    // Created here, the state is not in this Redis: a member again after its Redis lost it.
    let created = false;
    for (const key of tensors) created = (await ensureTensor(x.local, key, x.length)) || created;
    const previous = sliceRanges(x.length, x.before.length);
    const lost = (from: number, to: number, why: string) => {
      x.log(`round ${x.round}: the optimizer state of elements ${from}-${to - 1} was lost with ${why}; it starts again from zero`);
      result.lost += to - from;
    };
    const bound = Math.max(1, Math.floor(x.deadlineMs / 2));
    await Promise.all(x.before.map(async (owner, j) => {
      const from = Math.max(mine.offset, previous[j].offset);
      const to = Math.min(mine.offset + mine.count, previous[j].offset + previous[j].count);
      if (from >= to) return;
      if (owner.id === x.me) {
        // Already here at its offsets, unless this Redis lost it.
        if (created) lost(from, to, "this peer's Redis");
        return;
      }
      try {
        await x.links.timed((async () => {
          const c = await x.links.client(owner.url);
          for (const key of tensors) await streamTensor(c, key, from, to - from, x.local, key, from, { chunkElements: x.chunkElements });
        })(), bound, owner.url);
        result.fetched += to - from;
      } catch (err) {
        await x.links.forget(owner.url); // stops a fetch cut off halfway: nothing of it lands later
        for (const key of tensors) await writeChunks(x.local, key, from, new Float32Array(to - from), { chunkElements: x.chunkElements });
        lost(from, to, `${owner.id} (${(err as Error).message})`);
      }
    }));
  }
  await x.local.set(K.optimizerLayout, layout);
  return result;
}

/**
 * The members of `round - 1`, whose slices the optimizer state is in: as this peer recorded them
 * when it prepared that round (`K.roundMembers`; a joiner gets the coordinator's at admission),
 * with their records for the addresses. Not from the records' rounds: a member readmitted in the
 * view that followed has its record rewritten to start later, although that round's slices
 * counted it. Where nothing was recorded for that round, the records' members of it.
 */
export async function previousOwners(local: Redis, all: MemberRecord[], round: number): Promise<MemberRecord[]> {
  if (round === 0) return [];
  const raw = await local.get(K.roundMembers);
  const held = raw === null ? null : (JSON.parse(raw) as { round: number; ids: string[] });
  if (held === null || held.round !== round - 1) return all.filter((m) => isActive(m, round - 1));
  const byId = new Map(all.map((m) => [m.id, m]));
  // A member with no record cannot be reached: its part is lost, said as for any other.
  return held.ids.map((id) => byId.get(id) ?? { id, url: 'redis://unknown:0', fromRound: 0 });
}

/** Records the members of the round being prepared, in canonical order (see previousOwners). */
export async function recordRoundMembers(local: Redis, round: number, members: MemberRecord[]): Promise<void> {
  await local.set(K.roundMembers, JSON.stringify({ round, ids: members.map((m) => m.id) }));
}
