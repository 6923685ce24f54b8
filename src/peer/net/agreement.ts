import type { Redis } from '../../tensor/redis-client.ts';
import { admit, refusal, sendAdmission, takeJoinRequests } from './admission.ts';
import { heartbeatStaleAfter, watchHeartbeat } from './heartbeat.ts';
import type { Inbox } from './inbox.ts';
import { K } from './keys.ts';
import type { PeerLinks } from './links.ts';
import { nextView, type MemberRecord, type View } from './membership.ts';

/** What every member says at the end of a round; the coordinator's also carries the next view. */
export interface RoundReport {
  checksum: string;
  leaving: boolean;
  view?: View;
}

export interface AgreementInput {
  round: number;
  me: string;
  /** The round's members, in canonical order (this peer included). */
  members: MemberRecord[];
  /** Members this peer found missing in the round's exchange: they are not waited for. */
  suspects: Set<string>;
  report: RoundReport;
  layoutHash: string;
  deadlineMs: number;
  local: Redis;
  links: PeerLinks;
  inbox: Inbox;
  log(msg: string): void;
}

export interface Agreement {
  view: View;
  /** The coordinator whose state is the reference: a peer with another checksum copies its state. */
  reference: { id: string; url: string; checksum: string };
  /** Joiners this peer admitted as the coordinator. */
  admitted: string[];
}

/** The peer that coordinates a round: the lowest id among the members not yet given up on. */
function coordinatorOf(members: MemberRecord[], givenUp: Set<string>): MemberRecord | undefined {
  return members.find((m) => !givenUp.has(m.id));
}

/**
 * The end of a round, where membership changes are agreed. Every member sends its report
 * (checksum, whether it leaves) to the others; the coordinator (lowest id) waits for the
 * reports, decides the next round's view (who reported and stays, plus the joiners that
 * asked), and sends it with its own checksum, which is the reference every other member
 * checks its parameters against. Joins, leaves and drops therefore take effect at the same
 * round boundary on every peer: there is one membership per round.
 *
 * A coordinator that does not report is given up on after two deadlines (its wait for a
 * missing member takes one), or sooner, after half a deadline, if its heartbeat stands still
 * (it is dead, not waiting: a killed coordinator then costs the others one deadline at most,
 * like any other member). The next lowest id takes its place, unless its Redis says
 * this peer was dropped: then this peer is the one cut off, and it must rejoin rather than
 * go on alone as a second network. Whoever coordinates decides only with a quorum of the
 * round's members behind it (holdsQuorum); without one it is the peer cut off, and rejoins.
 */
export async function agree(x: AgreementInput): Promise<Agreement> {
  const givenUp = new Set(x.suspects);
  givenUp.delete(x.me);
  const body = JSON.stringify(x.report);
  await x.local.set(K.report(x.round, x.me), body);
  let sentToAll = false;
  for (;;) {
    const coordinator = coordinatorOf(x.members, givenUp)!;
    if (coordinator.id === x.me) return coordinate(x, givenUp);
    if (!sentToAll) {
      // Sent to all, waited on by none: a member cut off since the exchange would otherwise
      // hold this peer's wait for the view back by its connection's timeout (one more
      // deadline). The sends keep their order on each connection.
      const others = x.members.filter((m) => m.id !== x.me);
      void x.links.sendToAll(others.map((m) => m.url), K.report(x.round, x.me), body);
      sentToAll = true;
    }
    const staleMs = heartbeatStaleAfter(x.deadlineMs);
    // A stall of this process shorter than a quarter of the verdict still counts as watched
    // time: the writer's beat, held by a stall as long, would then be one beat late at most.
    const stillFor = watchHeartbeat(x.local, coordinator.id, Math.min(500, staleMs / 4));
    const found = await x.inbox.until(async () => (await viewAmongReports(x)) ?? ((await stillFor()) >= staleMs ? 'dead' : null), x.deadlineMs * 2);
    if (found && found !== 'dead') return { view: found.view, reference: found.reference, admitted: [] };
    if (await droppedBy(x, coordinator)) {
      throw new DroppedError(x.me, x.round + 1, `coordinator ${coordinator.id} dropped it`);
    }
    x.log(found === 'dead'
      ? `round ${x.round}: coordinator ${coordinator.id} sent no report, and its heartbeat stood still for ${staleMs} ms; the next lowest id takes over`
      : `round ${x.round}: coordinator ${coordinator.id} sent no report within ${x.deadlineMs * 2} ms; the next lowest id takes over`);
    givenUp.add(coordinator.id);
  }
}

/** The lowest-id report of the round that carries a view, if one has arrived. */
async function viewAmongReports(x: AgreementInput): Promise<{ view: View; reference: Agreement['reference'] } | null> {
  const others = x.members.filter((m) => m.id !== x.me);
  const raw = others.length ? await x.local.mGet(others.map((m) => K.report(x.round, m.id))) : [];
  for (const [i, m] of others.entries()) {
    const r = raw[i] ? (JSON.parse(String(raw[i])) as RoundReport) : null;
    if (r?.view && r.view.round === x.round + 1) return { view: r.view, reference: { id: m.id, url: m.url, checksum: r.checksum } };
  }
  return null;
}

/** Whether `coordinator`'s own records say this peer was dropped by the next round. */
async function droppedBy(x: AgreementInput, coordinator: MemberRecord): Promise<boolean> {
  try {
    const c = await x.links.client(coordinator.url);
    const raw = await x.links.timed(c.hGet(K.members, x.me), 1_000);
    const rec = raw ? (JSON.parse(String(raw)) as MemberRecord) : null;
    return rec === null || (rec.leftAt !== undefined && rec.leftAt <= x.round + 1);
  } catch {
    return false;
  }
}

/**
 * Whether the members that answered can decide round `round`'s next view. Counted first among
 * the members established before the round (quorumBase): more than half of them hold it, fewer
 * do not. On a tie there, among the newcomers admitted at this boundary, the same way; on a tie
 * there too (or with none), the side with the lowest established id holds it. Two disjoint
 * sides part at the first of these steps either wins, so they never both hold it: a network
 * never splits in two, and the side without it is the one cut off.
 *
 * So newcomers that have not answered (a newcomer's first round is often slow: its functions
 * start cold) never cost the established members their quorum, and a newcomer that has
 * answered breaks a tie among them: a coordinator killed in the round after it readmitted a
 * peer left its one established partner without a quorum, and the network of three ended
 * (a `.ci/run`'s kill bench).
 */
export function holdsQuorum(answered: Set<string>, members: MemberRecord[], round: number): boolean {
  const base = quorumBase(members, round);
  const newcomers = members.filter((m) => !base.includes(m));
  const held = (group: MemberRecord[]) => 2 * group.filter((m) => answered.has(m.id)).length - group.length;
  const established = held(base);
  if (established !== 0) return established > 0;
  const joined = held(newcomers);
  if (joined !== 0) return joined > 0;
  return answered.has(base[0]!.id);
}

/**
 * The members established in round `round`: those that took part in an earlier round. A joiner
 * admitted at this boundary has proven nothing yet; counting it as their equal would let two
 * slow newcomers outvote, and cut off, the peer that admitted them (holdsQuorum counts them
 * only to break a tie).
 */
export function quorumBase(members: MemberRecord[], round: number): MemberRecord[] {
  const established = members.filter((m) => m.fromRound < round);
  return established.length > 0 ? established : members;
}

/** The coordinator's side: gather the reports, decide the next view, send it, admit joiners. */
async function coordinate(x: AgreementInput, givenUp: Set<string>): Promise<Agreement> {
  const expected = x.members.filter((m) => m.id !== x.me && !givenUp.has(m.id));
  const { present } = await x.inbox.waitFor(expected.map((m) => K.report(x.round, m.id)), x.deadlineMs);
  // Taking over from a coordinator given up on: if it was only slow (stalled for half a
  // deadline) and its view came meanwhile, follow that view rather than send a second one
  // for the same round, which would leave the members split between the two.
  const lower = givenUp.size > 0 ? await viewAmongReports(x) : null;
  if (lower && x.members.findIndex((m) => m.id === lower.reference.id) < x.members.findIndex((m) => m.id === x.me)) {
    x.log(`round ${x.round}: ${lower.reference.id}'s view came after all; following it`);
    return { view: lower.view, reference: lower.reference, admitted: [] };
  }
  const values = present.length ? await x.local.mGet(present) : [];
  const reports = new Map<string, RoundReport>([[x.me, x.report]]);
  present.forEach((k, i) => reports.set(k.slice(k.lastIndexOf(':') + 1), JSON.parse(String(values[i])) as RoundReport));
  // Members that sat the round out (none of their gradients arrived) are not in the next view,
  // but count toward the quorum: they said they will not go on without the others, and rejoin
  // through them. A founding pair whose lowest id sits out round 0 thereby goes on.
  const unheard = x.members.filter((m) => !reports.has(m.id));
  const satOut = await whoSatOut(x.local, x.round, unheard.map((m) => m.id));
  if (!holdsQuorum(new Set([...reports.keys(), ...satOut]), x.members, x.round)) {
    const silent = unheard.map((m) => m.id).filter((id) => !satOut.includes(id));
    throw new DroppedError(x.me, x.round + 1, `it reached only ${[...reports.keys()].join(', ')} of the round's ${x.members.length} members, not a majority: cut off from ${silent.join(', ')}, which go on without it`);
  }
  const stay = new Set([...reports].filter(([, r]) => !r.leaving).map(([id]) => id));

  const requests = await takeJoinRequests(x.local);
  const staying = x.members.filter((m) => stay.has(m.id));
  const accepted = [];
  for (const req of requests) {
    // A member that reported this round is live: its request is left from an earlier rejoin
    // that succeeded through another member.
    if (staying.some((m) => m.id === req.member.id && m.url === req.member.url)) continue;
    const why = refusal(req, x.layoutHash, staying);
    if (why === null) { accepted.push(req); continue; }
    x.log(`round ${x.round}: refusing ${req.member.id}: ${why}`);
    await x.links.admitting(req.member.url, req.nonce, (c) => sendAdmission(c, { nonce: req.nonce, refused: why })).catch(() => {});
  }
  const view: View = nextView(x.round, x.members, stay, accepted.map((r) => r.member));
  // A stop asked for joins the view: every member learns it at this same boundary.
  const [agreed, requested] = await x.local.mGet([K.stopAt, K.stopRequest]);
  if (agreed !== null) view.stopAt = Number(agreed);
  else if (requested !== null) view.stopAt = Math.max(Number(requested), view.round);
  const report: RoundReport = { ...x.report, view };
  const body = JSON.stringify(report);
  await x.local.set(K.report(x.round, x.me), body);
  const audience = [...new Map([...x.members, ...view.members].filter((m) => m.id !== x.me).map((m) => [m.id, m])).values()];
  // Everyone hears it, those left out too (so a live one learns it was dropped), and nobody
  // is waited on: a member cut off after it reported must not cost the others a deadline.
  void x.links.sendToAll(audience.map((m) => m.url), K.report(x.round, x.me), body);

  // The view is out; now hand each joiner the state every member has after this round.
  const admitted: string[] = [];
  for (const req of accepted) {
    try {
      // Bounded: a joiner cut off mid-copy must not hold the network's coordinator forever.
      await x.links.admitting(req.member.url, req.nonce, (joiner) => admit(x.local, joiner, req, view));
      admitted.push(req.member.id);
      x.log(`round ${x.round}: admitted ${req.member.id} from round ${view.round}`);
    } catch (err) {
      // The copy's connection is gone with it. The joiner misses the next round's exchange and
      // is dropped then; it may ask again.
      x.log(`round ${x.round}: could not hand ${req.member.id} the state: ${(err as Error).message}`);
    }
  }
  const me = x.members.find((m) => m.id === x.me)!;
  return { view, reference: { id: x.me, url: me.url, checksum: x.report.checksum }, admitted };
}

/** Those of `ids` whose marker in `local` says they sat `round` out (K.sitsOut). */
export async function whoSatOut(local: Redis, round: number, ids: string[]): Promise<string[]> {
  if (ids.length === 0) return [];
  const marks = await local.mGet(ids.map((id) => K.sitsOut(round, id)));
  return ids.filter((_, i) => marks[i] !== null);
}

/** This peer is no longer a member: it was dropped, and should rejoin to go on. */
export class DroppedError extends Error {
  constructor(readonly peer: string, readonly round: number, why: string) {
    super(`peer ${peer} was dropped from the network at round ${round} (${why})`);
    this.name = 'DroppedError';
  }
}
