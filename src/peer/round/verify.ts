import type { InDbTensorStore } from '../../tensor/in-db.ts';
import type { Redis } from '../../tensor/redis-client.ts';
import { agree, DroppedError } from '../net/agreement.ts';
import type { Inbox } from '../net/inbox.ts';
import { K } from '../net/keys.ts';
import type { PeerLinks } from '../net/links.ts';
import type { Membership, MemberRecord } from '../net/membership.ts';
import { copyTrainingState } from '../net/state-copy.ts';

export interface VerifyInput {
  peer: string;
  round: number;
  members: MemberRecord[];
  /** Members that missed this round's exchange: not waited for again. */
  suspects: Set<string>;
  /** Whether this peer asked to leave (it says so in its report). */
  leaving: boolean;
  layoutHash: string;
  deadlineMs: number;
  local: Redis;
  store: InDbTensorStore;
  links: PeerLinks;
  inbox: Inbox;
  membership: Membership;
  log(msg: string): void;
}

export interface VerifyResult {
  /** This peer's parameters' checksum after any repair. */
  checksum: string;
  repaired: boolean;
  /** Members not in the next round's view (this peer too, unless it left on its own). */
  dropped: string[];
  /** This peer's leave took effect: it is not in the next view. */
  left: boolean;
  /** Time spent waiting for the agreement. */
  waitMs: number;
}

/**
 * The end of a round, the membership changes: every member reports its parameters' checksum,
 * the round's coordinator answers with the next round's members (joins, leaves and drops take
 * effect there, the same on every peer) and its checksum, the reference. A peer whose checksum
 * differs copies the state from the coordinator, so all replicas agree bit for bit. A peer left
 * out without asking gets DroppedError (it asks to rejoin).
 */
export async function verifyRound(x: VerifyInput): Promise<VerifyResult> {
  const t = performance.now();
  const mine = await x.store.checksum(K.params);
  const { view, reference } = await agree({
    round: x.round, me: x.peer, members: x.members, suspects: x.suspects, report: { checksum: mine, leaving: x.leaving },
    layoutHash: x.layoutHash, deadlineMs: x.deadlineMs, local: x.local, links: x.links, inbox: x.inbox, log: x.log,
  });
  const waitMs = performance.now() - t;
  await x.membership.applyView(view);
  const stays = new Set(view.members.map((m) => m.id));
  const gone = x.members.filter((m) => !stays.has(m.id));
  const dropped = gone.map((m) => m.id).filter((id) => id !== x.peer || !x.leaving);
  if (dropped.length > 0) x.log(`round ${x.round}: ${dropped.join(', ')} dropped from round ${view.round} on`);
  await Promise.allSettled(gone.map((m) => x.links.forget(m.url)));
  const left = !stays.has(x.peer);
  if (left && !x.leaving) throw new DroppedError(x.peer, view.round, `coordinator ${reference.id} left it out`);

  let checksum = mine, repaired = false;
  if (reference.checksum !== mine) {
    x.log(`round ${x.round}: checksum ${mine} differs from ${reference.id}'s ${reference.checksum}; repairing from it`);
    // Bounded: a reference cut off mid-copy must not hold this peer forever; without its state
    // this peer cannot go on in the round, so it asks to be admitted again.
    try {
      await x.links.timed((async () => copyTrainingState(await x.links.client(reference.url), x.local))(), x.deadlineMs, reference.url);
    } catch (err) {
      // Closing the connection stops the copy's remaining reads, so nothing late lands here.
      await x.links.forget(reference.url);
      throw new DroppedError(x.peer, view.round, `could not copy the state of ${reference.id}: ${(err as Error).message}`);
    }
    checksum = await x.store.checksum(K.params);
    repaired = true;
  }
  return { checksum, repaired, dropped, left, waitMs };
}
