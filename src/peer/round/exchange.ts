import type { AggregationRule } from '../../tensor/tensor-store.ts';
import type { InDbTensorStore } from '../../tensor/in-db.ts';
import { copyRange, ensureTensor, fanOutTensor, type DirectRoute, type DirectSender, type StreamTarget, type TransferOptions } from '../../tensor/transfer.ts';
import type { Redis } from '../../tensor/redis-client.ts';
import type { Inbox } from '../net/inbox.ts';
import { K } from '../net/keys.ts';
import type { PeerLinks } from '../net/links.ts';
import type { MemberRecord } from '../net/membership.ts';

export interface ExchangeInput {
  round: number;
  /** Used when too few averages arrived for `rule` (see `ruleFor`). */
  fallback: 'median' | 'mean' | 'none';
  log(msg: string): void;
  me: MemberRecord;
  /** Active members of the round, in canonical (id) order, including this peer. */
  members: MemberRecord[];
  /** This peer's average gradient for the round, in its own Redis. */
  averageKey: string;
  length: number;
  rule: AggregationRule;
  deadlineMs: number;
  /** Chunk size of every transfer (the plan's `chunkKib`). */
  transfer: TransferOptions;
  local: Redis;
  /** Present when the module sends tensors to the other peers itself (transfer 'direct'). */
  direct?: DirectSender;
  store: InDbTensorStore;
  links: PeerLinks;
  inbox: Inbox;
  /** Exchange 'sharded-step': the optimizer step on this peer's own slice (update.ts, stepSlice). */
  stepSlice?: (slice: { offset: number; count: number }) => Promise<void>;
}

export interface ExchangeResult extends SendResult {
  /** Key of the aggregated gradient in this peer's Redis (of the new parameters, for 'sharded-step'). */
  aggregateKey: string;
  aggregateMs: number;
}

/**
 * The rule to aggregate `n` inputs with: the configured one when it is defined for n, else the
 * fallback (said in the log), else a clear error. Never a robust rule on too few inputs.
 */
export function ruleFor(rule: AggregationRule, n: number, fallback: ExchangeInput['fallback'], round: number, log: (m: string) => void): AggregationRule {
  const need = rule.rule === 'krum' ? 2 * rule.byzantine + 3 : rule.rule === 'trimmed' ? 2 * rule.trim + 1 : 1;
  if (n >= need) return rule;
  const what = rule.rule === 'krum' ? `Multi-Krum with f=${rule.byzantine} needs at least ${need} averages (n > 2f+2)` : `a trimmed mean dropping ${(rule as { trim: number }).trim} on each side needs at least ${need} averages`;
  if (fallback === 'none') throw new Error(`round ${round}: ${what}, and ${n} arrived; set fallbackAggregation to median or mean to go on with fewer`);
  log(`round ${round}: ${what}, and ${n} arrived: aggregating with the ${fallback} instead`);
  return { rule: fallback };
}

/** Contiguous slices of [0, length), one per member in canonical order (sharded exchange). */
export function sliceRanges(length: number, members: number): { offset: number; count: number }[] {
  const base = Math.floor(length / members), extra = length % members;
  const out: { offset: number; count: number }[] = [];
  let offset = 0;
  for (let i = 0; i < members; i++) {
    const count = base + (i < extra ? 1 : 0);
    out.push({ offset, count });
    offset += count;
  }
  return out;
}

export interface SendResult {
  /** Peers whose contributions arrived (this peer included). */
  contributors: string[];
  missing: string[];
  bytesSent: number;
  bytesReceived: number;
  waitMs: number;
}

/**
 * The two phases of an exchange, which the round state machine runs as "exchanging" and
 * "aggregating". Both modes end with the same bytes in `K.aggregate(round)` on every peer
 * that received everything.
 */
export interface ExchangeMode {
  send(x: ExchangeInput): Promise<SendResult>;
  aggregate(x: ExchangeInput, sent: SendResult): Promise<ExchangeResult>;
}

/** How long the fan-out waits for every destination to be ready before sending to those that are. */
const READY_PATIENCE_MS = 500;

/** Where one range of a fan-out goes: a member's Redis, a key there and an offset in it. */
interface Destination {
  member: MemberRecord;
  key: string;
  offset: number;
}

/**
 * Streams one range of this peer's `srcKey` into every destination, each of which must hold
 * the key at full size; returns the members that received all of it. The module sends to a
 * destination itself where it can (transfer 'direct'); the others are relayed through this
 * process, each chunk read once. A destination that fails or misses the deadline gets nothing
 * more and is left out of the result (the round then counts it missing). A destination this
 * peer's Redis cannot connect to while this process can (an address only the peers resolve,
 * say) is relayed to from then on.
 */
async function fanOut(x: ExchangeInput, srcKey: string, srcOffset: number, count: number, dests: Destination[]): Promise<MemberRecord[]> {
  // A member this send misses waits out the deadline for it: the log says which and why.
  const failed = (m: MemberRecord, cause: unknown) =>
    x.log(`round ${x.round}: sending ${srcKey} to ${m.id} at ${m.url} failed (${(cause as Error | undefined)?.message?.split('\n')[0] ?? 'no cause given'}): it goes without this peer's part`);
  const relay = async (ds: Destination[]): Promise<MemberRecord[]> => {
    const targets = (await Promise.all(ds.map(async (d) => {
      try {
        const client = await x.links.timed(x.links.client(d.member.url), x.deadlineMs, d.member.url);
        return { member: d.member, target: { client, key: d.key, offset: d.offset } as StreamTarget };
      } catch (err) {
        failed(d.member, err); // unreachable: it will be missing from the round
        return null;
      }
    }))).filter((t): t is NonNullable<typeof t> => t !== null);
    const reached = new Set(await fanOutTensor(x.local, srcKey, srcOffset, count, targets.map((t) => t.target), x.deadlineMs, x.transfer));
    for (const t of targets) if (!reached.has(t.target)) failed(t.member, t.target.error);
    return targets.filter((t) => reached.has(t.target)).map((t) => t.member);
  };
  const direct = async (d: Destination, route: DirectRoute, sender: DirectSender): Promise<MemberRecord | null> => {
    try {
      const work = sender.send(srcKey, srcOffset, count, route, d.key, d.offset, { ...x.transfer, timeoutMs: x.deadlineMs });
      await x.links.timed(work, x.deadlineMs + 1_000, d.member.url);
      return d.member;
    } catch (err) {
      const msg = (err as Error).message;
      if (!/cannot (connect|resolve)/.test(msg)) return (failed(d.member, err), null);
      // Only a peer this process reaches when its Redis cannot is relayed to from now on; one
      // that neither reaches is simply missing from the round.
      const relayed = (await relay([d]))[0] ?? null;
      if (relayed) {
        x.links.cannotReachDirectly(d.member.url);
        x.log(`this peer's Redis cannot reach ${d.member.id} at ${d.member.url} itself (${msg.replace(/^.*?: /, '')}): relaying its tensors through this process`);
      }
      return relayed;
    }
  };
  const sender = x.direct;
  if (!sender) return relay(dests);
  // Destinations the module cannot send to (TLS) are relayed together: each chunk read once.
  const routed = dests.map((d) => ({ d, route: x.links.route(d.member.url) }));
  const [sent, relayed] = await Promise.all([
    Promise.all(routed.map(({ d, route }) => (route ? direct(d, route, sender) : null))),
    relay(routed.filter((r) => !r.route).map((r) => r.d)),
  ]);
  return [...sent.filter((m): m is MemberRecord => m !== null), ...relayed];
}

/**
 * Sends to destinations as they become ready, without waiting on one that is not: those ready
 * within `patienceMs` go in one batch (a relay reads each chunk once for all of them), any
 * later one on its own as soon as it is. A peer that cannot be reached (cut off, its Redis
 * gone) thereby costs the others nothing, instead of holding their data back until it times
 * out, which would make them miss this peer in turn.
 */
export async function sendAsReady<T, R>(prepared: Promise<T | null>[], send: (ready: T[]) => Promise<R[]>, patienceMs: number): Promise<R[]> {
  const values: (T | null)[] = prepared.map(() => null);
  const settled: boolean[] = prepared.map(() => false);
  const done = prepared.map((p, i) => p.catch(() => null).then((v) => { values[i] = v; settled[i] = true; }));
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([Promise.all(done), new Promise<void>((r) => { timer = setTimeout(r, patienceMs); })]);
  clearTimeout(timer);
  const batchOf = (indices: number[]) => indices.map((i) => values[i]).filter((v): v is T => v !== null);
  const indices = [...prepared.keys()];
  const sends: Promise<R[]>[] = [];
  const first = batchOf(indices.filter((i) => settled[i]));
  if (first.length) sends.push(send(first));
  // Each late one on its own, as soon as it is ready.
  for (const i of indices.filter((j) => !settled[j])) {
    sends.push(done[i]!.then(() => { const b = batchOf([i]); return b.length ? send(b) : []; }));
  }
  return (await Promise.all(sends)).flat();
}

/**
 * Waits for each member's marker, and no longer for a member that said it sits the round out
 * (K.sitsOut): its marker will not come. Resolves with the markers present and those missing.
 */
export function waitForMembers(x: Pick<ExchangeInput, 'round' | 'deadlineMs' | 'inbox'>, wanted: { id: string; key: string }[]): Promise<{ present: string[]; missing: string[] }> {
  const idOf = new Map(wanted.map((w) => [w.key, w.id]));
  return x.inbox.waitFor(wanted.map((w) => w.key), x.deadlineMs, { withdrawn: (key) => K.sitsOut(x.round, idOf.get(key)!) });
}

/** Sends a round marker after the data it announces (same connection, so it lands after). */
async function mark(x: ExchangeInput, url: string, marker: string): Promise<void> {
  await x.links.sendValue(url, marker, '1');
}

/**
 * Exchange "all", as in the original work: every peer streams its whole average into a
 * recycled buffer in every other peer's Redis, then each aggregates the same set inside its
 * own database, in the same order.
 */
export const exchangeAll: ExchangeMode = {
  async send(x) {
    const others = x.members.filter((m) => m.id !== x.me.id);
    // The own average takes part under the name the others give it, so every peer aggregates
    // the same inputs in the same (name) order: the mean sums in that order, Multi-Krum breaks
    // ties by it. The copy stays inside the database.
    const slot = K.slot.from(x.round, x.me.id);
    await ensureTensor(x.local, slot, x.length);
    await copyRange(x.local, x.averageKey, 0, x.length, slot, 0);
    // Every other peer's buffer exists at full size before a byte is sent. Sending and the
    // wait for the others' averages run at once: an unreachable peer costs one deadline.
    const prepared = others.map(async (m) => {
      try {
        const client = await x.links.timed(x.links.client(m.url), x.deadlineMs, m.url);
        await x.links.timed(ensureTensor(client, slot, x.length), x.deadlineMs, m.url);
        return m;
      } catch (err) {
        x.log(`round ${x.round}: ${m.id} at ${m.url} cannot take this peer's average (${(err as Error).message.split('\n')[0]}): it goes without it`);
        return null; // unreachable: it will be missing from the round
      }
    });
    const outgoing = sendAsReady(prepared, async (ready) => {
      const to = await fanOut(x, x.averageKey, 0, x.length, ready.map((member) => ({ member, key: slot, offset: 0 })));
      await Promise.allSettled(to.map((m) => mark(x, m.url, K.from(x.round, x.me.id))));
      return to;
    }, READY_PATIENCE_MS);

    const t0 = performance.now();
    const { present } = await waitForMembers(x, others.map((m) => ({ id: m.id, key: K.from(x.round, m.id) })));
    const sentTo = await outgoing;
    const bytesSent = sentTo.length * x.length * 4;
    const contributors = x.members.filter((m) => m.id === x.me.id || present.includes(K.from(x.round, m.id))).map((m) => m.id);
    return {
      contributors,
      missing: others.map((m) => m.id).filter((id) => !contributors.includes(id)),
      bytesSent,
      bytesReceived: (contributors.length - 1) * x.length * 4,
      waitMs: performance.now() - t0,
    };
  },

  async aggregate(x, sent) {
    const t = performance.now();
    const aggregateKey = K.aggregate(x.round);
    const rule = ruleFor(x.rule, sent.contributors.length, x.fallback, x.round, x.log);
    await x.store.aggregate(aggregateKey, sent.contributors.map((id) => K.slot.from(x.round, id)), rule, x.length);
    return { ...sent, aggregateKey, aggregateMs: performance.now() - t };
  },
};

/**
 * Exchange "sharded": reduce-scatter then all-gather. Each member owns one slice; every
 * peer streams each owner its slice of its average, the owner aggregates the slice in its
 * database and streams the result into every member's aggregate. Each peer receives about
 * 2(N-1)/N of the vector instead of N-1 vectors, and the bytes equal those of "all" for
 * coordinate-wise rules (which do not depend on the inputs' order).
 *
 * The aggregate buffer must exist at full size before the round's exchange starts: the
 * round's preparation ensures it, so an owner's all-gather never finds it missing.
 *
 * When a peer misses the deadline, what it should have contributed is left out (a missing
 * owner's slice falls back to this peer's own average); the round's agreement then finds
 * the disagreement and repairs it from the coordinator.
 */
export const exchangeSharded: ExchangeMode = {
  async send(x) {
    const ranges = sliceRanges(x.length, x.members.length);
    let bytesSent = 0;
    // Each owner's slice goes out on its own, while this peer waits for its own slice's parts:
    // an unreachable owner costs one deadline, and holds back no other.
    const outgoing = Promise.allSettled(x.members.map(async (m, j) => {
      const key = K.slot.part(x.round, m.id, x.me.id);
      const { offset, count } = ranges[j];
      // Its own slice stays where it is: the owner's aggregation reads it in the average.
      if (m.id === x.me.id) {
        await x.local.set(K.part(x.round, x.me.id, x.me.id), '1');
        return;
      }
      await x.links.timed((async () => {
        const c = await x.links.client(m.url);
        await ensureTensor(c, key, count);
      })(), x.deadlineMs, m.url);
      if ((await fanOut(x, x.averageKey, offset, count, [{ member: m, key, offset: 0 }])).length === 0) return;
      bytesSent += count * 4;
      await mark(x, m.url, K.part(x.round, m.id, x.me.id));
    }));
    const t0 = performance.now();
    const parts = await waitForMembers(x, x.members.map((m) => ({ id: m.id, key: K.part(x.round, x.me.id, m.id) })));
    await outgoing;
    const contributors = x.members.filter((m) => parts.present.includes(K.part(x.round, x.me.id, m.id))).map((m) => m.id);
    const mine = ranges[x.members.findIndex((m) => m.id === x.me.id)];
    return {
      contributors,
      missing: x.members.map((m) => m.id).filter((id) => !contributors.includes(id)),
      bytesSent,
      bytesReceived: (contributors.length - 1) * mine.count * 4,
      waitMs: performance.now() - t0,
    };
  },

  async aggregate(x, sent) {
    const { mine, aggregateMs } = await reduceOwnSlice(x, sent);
    const aggregateKey = K.aggregate(x.round);
    // All-gather: this peer's reduced slice, in place in its aggregate, goes into every member's.
    return allGather(x, sent, aggregateMs, { key: aggregateKey, source: { key: aggregateKey, offset: mine.offset }, fallback: x.averageKey });
  },
};

/**
 * Exchange "sharded-step": reduce-scatter, then each owner takes the optimizer step on its
 * slice only (ZeRO's first stage) and all-gathers the new parameters instead of the aggregate.
 * The step over the whole vector at every peer becomes a step over 1/N of it at each, and the
 * bytes equal those of "all" and "sharded" (the step is element-wise). The optimizer state is
 * then sharded too: each peer keeps its slice's (optimizer-slices.ts moves it when the members
 * change). The update installs the gathered parameters (update.ts, installGathered).
 *
 * A missing owner's slice keeps this peer's current parameters (no step); the round's
 * agreement then repairs the peers that differ from the coordinator.
 */
export const exchangeShardedStep: ExchangeMode = {
  send: exchangeSharded.send,

  async aggregate(x, sent) {
    if (!x.stepSlice) throw new Error('exchange sharded-step needs the optimizer step of a slice');
    const { mine, aggregateMs } = await reduceOwnSlice(x, sent);
    const t = performance.now();
    await x.stepSlice(mine);
    const next = K.nextParams(x.round);
    await copyRange(x.local, K.params, mine.offset, mine.count, next, mine.offset);
    const stepMs = performance.now() - t;
    return allGather(x, sent, aggregateMs + stepMs, { key: next, source: { key: next, offset: mine.offset }, fallback: K.params });
  },
};

/**
 * The owner's part of a sharded exchange: its slice of every contributor's average,
 * aggregated into its place in `K.aggregate`, where the step reads it at the parameters'
 * offsets and the all-gather sends it from. Its own average is read in place, the others'
 * slices from their parts: nothing is copied.
 */
async function reduceOwnSlice(x: ExchangeInput, sent: SendResult): Promise<{ mine: { offset: number; count: number }; aggregateMs: number }> {
  const ranges = sliceRanges(x.length, x.members.length);
  const mine = ranges[x.members.findIndex((m) => m.id === x.me.id)];
  const t = performance.now();
  const rule = ruleFor(x.rule, sent.contributors.length, x.fallback, x.round, x.log);
  const inputs = sent.contributors.map((id) => (id === x.me.id ? { key: x.averageKey, offset: mine.offset } : { key: K.slot.part(x.round, x.me.id, id), offset: 0 }));
  await x.store.aggregateRange(K.aggregate(x.round), mine.offset, inputs, rule, mine.count);
  return { mine, aggregateMs: performance.now() - t };
}

/**
 * The all-gather of a sharded exchange: this peer's slice of `to.key`, already in place here,
 * goes from `to.source` into every other member's `to.key` (read once, written to all), then a
 * marker; the other owners' slices arrive the same way. A slice whose owner missed the deadline
 * is taken from this peer's `to.fallback` instead.
 */
async function allGather(x: ExchangeInput, sent: SendResult, aggregateMs: number, to: { key: string; source: { key: string; offset: number }; fallback: string }): Promise<ExchangeResult> {
  const ranges = sliceRanges(x.length, x.members.length);
  const mine = ranges[x.members.findIndex((m) => m.id === x.me.id)];
  const receivers = x.members.filter((m) => m.id !== x.me.id && sent.contributors.includes(m.id));
  await x.local.set(K.gathered(x.round, x.me.id), '1');
  const gatheredTo = await fanOut(x, to.source.key, to.source.offset, mine.count, receivers.map((member) => ({ member, key: to.key, offset: mine.offset })));
  await Promise.allSettled(gatheredTo.map((m) => mark(x, m.url, K.gathered(x.round, x.me.id))));
  const bytesSent = sent.bytesSent + gatheredTo.length * mine.count * 4;

  const t0 = performance.now();
  const gathered = await waitForMembers(x, x.members.map((m) => ({ id: m.id, key: K.gathered(x.round, m.id) })));
  const waitMs = sent.waitMs + performance.now() - t0;
  let bytesReceived = sent.bytesReceived;
  const missing = new Set(sent.missing);
  for (const [j, m] of x.members.entries()) {
    if (m.id === x.me.id) continue;
    if (gathered.present.includes(K.gathered(x.round, m.id))) { bytesReceived += ranges[j].count * 4; continue; }
    missing.add(m.id);
    const t1 = performance.now();
    await copyRange(x.local, to.fallback, ranges[j].offset, ranges[j].count, to.key, ranges[j].offset);
    aggregateMs += performance.now() - t1;
  }
  return {
    aggregateKey: to.key,
    contributors: sent.contributors.filter((id) => !missing.has(id)),
    missing: [...missing],
    bytesSent,
    bytesReceived,
    waitMs,
    aggregateMs,
  };
}
