import { randomUUID } from 'node:crypto';
import type { Redis } from '../../tensor/redis-client.ts';
import type { Inbox } from './inbox.ts';
import { K } from './keys.ts';
import { Membership, type MemberRecord, type View } from './membership.ts';
import { copyTrainingState } from './state-copy.ts';

/**
 * Joining a running network goes through one place, the round's coordinator (the lowest id
 * among the round's members), so concurrent joiners can never miss each other:
 *
 * 1. the joiner pushes a request onto any member's Redis (its bootstrap peer);
 * 2. a member that is not the coordinator forwards the requests it holds when it prepares
 *    a round;
 * 3. the coordinator takes all pending requests at the end of a round, puts the joiners in
 *    the next round's view (which every member receives with the coordinator's report),
 *    copies its verified state into each joiner's Redis and then writes the admission there.
 *
 * The joiner starts at the admitted round with the coordinator's state after the round
 * before: byte-identical to every other member's, with nothing to repair.
 */
export interface JoinRequest {
  member: MemberRecord;
  layoutHash: string;
  /** Tells this request's admission from an older one's. */
  nonce: string;
}

export interface Admission {
  nonce: string;
  /** First round the joiner takes part in; or why it was refused. */
  round?: number;
  refused?: string;
}

export function joinRequest(member: MemberRecord, layoutHash: string): JoinRequest {
  return { member, layoutHash, nonce: randomUUID() };
}

/** Leaves a join request in a member's Redis and announces it. */
export async function sendJoinRequest(to: Redis, req: JoinRequest): Promise<void> {
  await to.rPush(K.joinRequests, JSON.stringify(req));
  await to.publish(K.inbox, K.joinRequests);
}

/** Takes every pending request, the latest per peer id. */
export async function takeJoinRequests(local: Redis): Promise<JoinRequest[]> {
  const [raw] = await local.multi().lRange(K.joinRequests, 0, -1).del(K.joinRequests).exec() as unknown as [string[]];
  const byPeer = new Map<string, JoinRequest>();
  for (const r of raw ?? []) {
    try {
      const req = JSON.parse(String(r)) as JoinRequest;
      if (req?.member?.id && req.member.url && req.nonce) byPeer.set(req.member.id, req);
    } catch {
      // Not a request: nobody but peers writes this list, and a garbled entry must not stop a round.
    }
  }
  return [...byPeer.values()];
}

/** A member that is not the round's coordinator hands the requests it holds on. */
export async function forwardJoinRequests(local: Redis, coordinator: Redis): Promise<number> {
  const reqs = await takeJoinRequests(local);
  for (const r of reqs) await sendJoinRequest(coordinator, r);
  return reqs.length;
}

/** Why a coordinator refuses a request, or null to admit it. */
export function refusal(req: JoinRequest, layoutHash: string, members: MemberRecord[]): string | null {
  if (req.layoutHash !== layoutHash) return `its model layout ${req.layoutHash} does not match the network's ${layoutHash}`;
  const clash = members.find((m) => m.id === req.member.id && m.url !== req.member.url);
  if (clash) return `the id ${clash.id} is already taken by the live member at ${clash.url}`;
  return null;
}

/**
 * The coordinator's side, once the next view is out: the joiner's Redis receives the
 * training state, the network's plan, the membership and the round marker, and last the
 * admission, so a joiner that sees its admission finds everything else in place.
 */
export async function admit(local: Redis, joiner: Redis, req: JoinRequest, view: View): Promise<void> {
  await copyTrainingState(local, joiner);
  const [config, layout, held, roundMembers] = await Promise.all([local.get(K.config), local.get(K.layout), local.get(K.stopAt), local.get(K.roundMembers)]);
  // The view being admitted into may carry the stop: the coordinator records it only after.
  const stopAt = view.stopAt !== undefined ? String(view.stopAt) : held;
  const tx = joiner.multi().set(K.config, String(config)).set(K.layout, String(layout)).set(K.round, String(view.round)).del(K.state);
  if (stopAt !== null) tx.set(K.stopAt, stopAt);
  else tx.del(K.stopAt);
  // The members of the round that ended, as the coordinator prepared it: whose slices the
  // optimizer state is in (exchange 'sharded-step': optimizer-slices.ts, previousOwners).
  if (roundMembers !== null) tx.set(K.roundMembers, roundMembers);
  else tx.del(K.roundMembers);
  await tx.exec();
  // The records of the round that just ended come first: the joiner then knows its members as
  // every other peer does, also those the view drops (exchange 'sharded-step' finds the slices
  // of the optimizer state by them).
  const joining = new Membership(joiner);
  for (const m of await new Membership(local).activeAt(view.round - 1)) await joining.put(m);
  await joining.applyView(view);
  await sendAdmission(joiner, { nonce: req.nonce, round: view.round });
}

export async function sendAdmission(joiner: Redis, a: Admission): Promise<void> {
  await joiner.set(K.admission, JSON.stringify(a));
  await joiner.publish(K.inbox, K.admission);
}

/**
 * The joiner's side: waits in its own Redis for the admission that answers `nonce`.
 * Returns null when none came within `waitMs` (the caller asks again).
 */
export async function awaitAdmission(local: Redis, inbox: Inbox, nonce: string, waitMs: number): Promise<Admission | null> {
  const end = Date.now() + waitMs;
  while (Date.now() < end) {
    const { present } = await inbox.waitFor([K.admission], end - Date.now());
    if (present.length === 0) return null;
    const raw = await local.get(K.admission);
    const a = raw ? (JSON.parse(raw) as Admission) : null;
    if (a?.nonce === nonce) {
      await local.del(K.admission);
      return a;
    }
    // An answer to an older request of ours: drop it and wait for this one's.
    await local.del(K.admission);
  }
  return null;
}
