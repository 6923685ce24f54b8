import { createServer, type AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { seededVector, useRealPeers } from '../../../test/training/real-peers.ts';
import type { OptimizerConfig } from '../../config/training.ts';
import { adamCommand, call, InDbTensorStore, sgdCommand } from '../../tensor/in-db.ts';
import { meanInOrder } from '../../tensor/reference.ts';
import { K } from '../net/keys.ts';
import type { MemberRecord } from '../net/membership.ts';
import { optimizerTensors, previousOwners, recordRoundMembers, reshardOptimizerState } from '../net/optimizer-slices.ts';
import { exchangeShardedStep, sliceRanges, type ExchangeInput } from './exchange.ts';
import { installGathered, stepSlice, UPDATE_PIECE, type UpdateInput } from './update.ts';

/**
 * Exchange 'sharded-step' (ZeRO's first stage) between three real peers: each owner steps its
 * own slice and all-gathers the parameters. Checked against one peer taking the whole step on
 * the mean of the same averages: the bytes must be the same, round after round, also after the
 * members change and the optimizer state moves to the new owners.
 */
const N = 3;
// Longer than an update piece, not a multiple of 2 or 3: slices that cut pieces unevenly.
const LENGTH = UPDATE_PIECE + 100_003;
const TRAINABLE = LENGTH - 77; // batch-norm statistics at the end: copied, not stepped
const model = { length: LENGTH, trainable: TRAINABLE };
const { clients, inboxes, links, senders, members } = useRealPeers(N);
const random = (n: number, seed: number) => seededVector(n, seed);

const store = (i: number) => new InDbTensorStore(clients[i]);

/** The reference, in p0's Redis under "ref:" keys: the whole step on the mean, as exchange "all" takes it. */
async function referenceStep(o: OptimizerConfig, round: number, averages: Float32Array[]): Promise<void> {
  await store(0).set('ref:agg', meanInOrder(averages));
  await call(clients[0], o.kind === 'sgd'
    ? sgdCommand('ref:params', 'ref:agg', 'ref:velocity', o)
    : adamCommand('ref:params', 'ref:agg', 'ref:m', 'ref:v', 'ref:step', o));
  await call(clients[0], ['PL.COPYRANGE', 'ref:params', String(TRAINABLE), 'ref:agg', String(TRAINABLE), String(LENGTH - TRAINABLE)]);
}

/**
 * The rounds' deadline: every member of a round sends, so none is waited out; at 5 s, a
 * member's state copy (half a deadline) could miss it on a loaded machine and report a loss.
 */
const ROUND_DEADLINE_MS = 120_000;

/** One round of the given members (indices into `members`), each with its own average. */
async function round(o: OptimizerConfig, r: number, who: number[]): Promise<void> {
  const part = who.map((i) => members[i]);
  const averages = who.map((i) => random(LENGTH, 1000 * r + i));
  const said: string[] = [];
  await Promise.all(who.map(async (i, k) => {
    await store(i).set(K.gradAvg(r), averages[k]);
    for (const key of [K.aggregate(r), K.nextParams(r)]) await store(i).zeros(key, LENGTH);
    const moved = await reshardOptimizerState({
      round: r, me: members[i].id, members: part, before: previousMembers.get(i) ?? [], length: LENGTH, optimizer: o,
      // Nothing here waits a deadline out: long, so a loaded machine's copies and markers make it.
      local: clients[i], links: links[i], deadlineMs: ROUND_DEADLINE_MS, chunkElements: 10_000, log: (m) => said.push(m),
    });
    if (moved) reshards.push(moved);
    const u: UpdateInput = { peer: members[i].id, round: r, local: clients[i], optimizer: o, lr: o.lr, model };
    const x: ExchangeInput = {
      round: r, me: members[i], members: part, averageKey: K.gradAvg(r), length: LENGTH, rule: { rule: 'mean' }, fallback: 'none',
      log: (m) => said.push(m), deadlineMs: ROUND_DEADLINE_MS, transfer: { chunkElements: 10_000 }, local: clients[i], store: store(i),
      links: links[i], inbox: inboxes[i], direct: senders[i], stepSlice: (slice) => stepSlice(u, slice),
    };
    const res = await exchangeShardedStep.aggregate(x, await exchangeShardedStep.send(x));
    expect(res.missing).toEqual([]);
    expect(await installGathered(u)).toBe(true);
    expect(await installGathered(u)).toBe(false); // once
    previousMembers.set(i, part);
  }));
  await referenceStep(o, r, averages);
  expect(said.filter((m) => /lost/.test(m))).toEqual([]);
}

const previousMembers = new Map<number, MemberRecord[]>();
const reshards: { fetched: number; lost: number }[] = [];

async function checksums(who: number[]): Promise<string[]> {
  return Promise.all(who.map((i) => store(i).checksum(K.params)));
}

describe('exchange "sharded-step"', () => {
  for (const o of [
    { kind: 'sgd', lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 0.01 },
    { kind: 'adam', lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, decoupled: true },
  ] as OptimizerConfig[]) {
    it(`${o.kind}: every peer ends each round with the whole step's bytes, also after a member leaves and the optimizer state moves`, async () => {
      previousMembers.clear();
      reshards.length = 0;
      const init = random(LENGTH, 7);
      for (const i of [0, 1, 2]) {
        await store(i).set(K.params, init);
        await clients[i].del([K.velocity, K.adamM, K.adamV, K.adamStep, K.optimizerLayout]);
      }
      await store(0).set('ref:params', init);
      await clients[0].del(['ref:velocity', 'ref:m', 'ref:v', 'ref:step']);
      const base = o.kind === 'sgd' ? 100 : 200;
      for (const r of [base, base + 1]) {
        await round(o, r, [0, 1, 2]);
        const ref = await store(0).checksum('ref:params');
        expect(await checksums([0, 1, 2])).toEqual([ref, ref, ref]);
      }
      // p2 leaves (its Redis still up): p0 and p1 take its slice's optimizer state over.
      await round(o, base + 2, [0, 1]);
      const ref = await store(0).checksum('ref:params');
      expect(await checksums([0, 1])).toEqual([ref, ref]);
      const moved = reshards.filter((m) => m.fetched > 0);
      // Everything but what each new owner held already (all previous owners are reachable).
      const overlap = (a: { offset: number; count: number }, b: { offset: number; count: number }) => Math.max(0, Math.min(a.offset + a.count, b.offset + b.count) - Math.max(a.offset, b.offset));
      const kept = [0, 1].reduce((s, k) => s + overlap(sliceRanges(LENGTH, 2)[k], sliceRanges(LENGTH, 3)[k]), 0);
      expect(moved.reduce((s, m) => s + m.fetched, 0)).toBe(LENGTH - kept);
      // Each peer holds the reference's optimizer state on its own slice.
      for (const [k, slice] of sliceRanges(LENGTH, 2).entries()) {
        for (const [key, refKey] of optimizerTensors(o).map((t) => [t, t === K.adamV ? 'ref:v' : t === K.adamM ? 'ref:m' : 'ref:velocity'])) {
          const a = await store(k).getRange(key, slice.offset, slice.count);
          const b = await store(0).getRange(refKey, slice.offset, slice.count);
          expect(Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength))).toBe(true);
        }
      }
    });
  }

  it('a slice whose previous owner cannot be reached starts again from zero state, and says so', async () => {
    const o = { kind: 'sgd', lr: 0.05, momentum: 0.9, nesterov: false, weightDecay: 0 } as OptimizerConfig;
    const said: string[] = [];
    await store(0).set(K.velocity, random(LENGTH, 3));
    await clients[0].set(K.optimizerLayout, JSON.stringify(['p0', 'gone']));
    const gone = { id: 'gone', url: 'redis://127.0.0.1:1', fromRound: 0 };
    const moved = await reshardOptimizerState({
      round: 9, me: 'p0', members: [members[0]], before: [members[0], gone], length: LENGTH, optimizer: o,
      local: clients[0], links: links[0], deadlineMs: 2_000, chunkElements: 10_000, log: (m) => said.push(m),
    });
    const half = sliceRanges(LENGTH, 2)[1];
    expect(moved).toEqual({ fetched: 0, lost: half.count });
    expect(said).toHaveLength(1);
    expect(said[0]).toMatch(new RegExp(`^round 9: the optimizer state of elements ${half.offset}-${LENGTH - 1} was lost with gone \\(.+\\); it starts again from zero$`));
    const kept = await store(0).getRange(K.velocity, 0, 4);
    expect(Array.from(kept)).toEqual(Array.from(random(LENGTH, 3).subarray(0, 4)));
    expect(Array.from(await store(0).getRange(K.velocity, half.offset, half.count)).every((v) => v === 0)).toBe(true);
    // A member again after its Redis lost everything (readmitted in the view that dropped it,
    // with the same members): its own previous slice is not there either, and that is said.
    await clients[0].del([K.velocity, K.optimizerLayout]);
    const again = await reshardOptimizerState({
      round: 12, me: 'p0', members: [members[0], members[1]], before: [members[0], members[1]], length: LENGTH, optimizer: o,
      local: clients[0], links: links[0], deadlineMs: 2_000, chunkElements: 10_000, log: (m) => said.push(m),
    });
    expect(again).toEqual({ fetched: 0, lost: sliceRanges(LENGTH, 2)[0].count });
    expect(said.at(-1)).toBe(`round 12: the optimizer state of elements 0-${sliceRanges(LENGTH, 2)[0].count - 1} was lost with this peer's Redis; it starts again from zero`);
    // The layout is recorded: the next round with the same members moves nothing.
    expect(await reshardOptimizerState({
      round: 13, me: 'p0', members: [members[0], members[1]], before: [members[0], members[1]], length: LENGTH, optimizer: o,
      local: clients[0], links: links[0], deadlineMs: 2_000, chunkElements: 10_000, log: (m) => said.push(m),
    })).toBeNull();
  });

  it('a previous owner that never answers is given half a deadline, and its part is lost', async () => {
    const o = { kind: 'sgd', lr: 0.05, momentum: 0.9, nesterov: false, weightDecay: 0 } as OptimizerConfig;
    // Accepts connections and says nothing: a peer cut off mid-stream.
    const silent = createServer(() => {});
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const url = `redis://127.0.0.1:${(silent.address() as AddressInfo).port}`;
    const said: string[] = [];
    try {
      await clients[0].del(K.optimizerLayout);
      const moved = await reshardOptimizerState({
        round: 20, me: 'p0', members: [members[0]], before: [members[0], { id: 'silent', url, fromRound: 0 }], length: LENGTH, optimizer: o,
        local: clients[0], links: links[0], deadlineMs: 2_000, chunkElements: 10_000, log: (m) => said.push(m),
      });
      expect(moved).toEqual({ fetched: 0, lost: sliceRanges(LENGTH, 2)[1].count });
      // Half the deadline (it hung forever before: the client's connect waited for an answer).
      expect(said[0]).toMatch(/was lost with silent \(.*did not answer within 1000 ms\)/);
    } finally {
      await links[0].forget(url);
      silent.close();
    }
  });

  it('finds the previous owners as the round before was prepared, also one readmitted since', async () => {
    const a = { id: 'a', url: 'redis://127.0.0.1:7001', fromRound: 0 };
    const d = { id: 'd', url: 'redis://127.0.0.1:7004', fromRound: 0 };
    // d sat round 7 out and was readmitted from round 8: its record now starts at 8, although
    // round 7's slices counted it.
    const records = [a, { ...d, fromRound: 8 }];
    // Nothing recorded for round 7 (this peer did not prepare it): the records' members of it.
    await recordRoundMembers(clients[2], 5, [a]);
    expect(await previousOwners(clients[2], records, 8)).toEqual([a]);
    // Recorded as round 7 was prepared: d too.
    await recordRoundMembers(clients[2], 7, [a, d]);
    expect(await previousOwners(clients[2], records, 8)).toEqual(records);
    expect(await previousOwners(clients[2], records, 0)).toEqual([]);
  });
});
