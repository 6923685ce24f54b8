import { describe, expect, it } from 'vitest';
import { seededVector, useRealPeers } from '../../../test/training/real-peers.ts';
import { InDbTensorStore } from '../../tensor/in-db.ts';
import { exchangeAll, exchangeSharded, ruleFor, sendAsReady, sliceRanges, waitForMembers, type ExchangeInput, type ExchangeMode } from './exchange.ts';
import { meanInOrder } from '../../tensor/reference.ts';
import { K } from '../net/keys.ts';
import type { MemberRecord } from '../net/membership.ts';

/** Three peers' Redis servers on loopback; the exchange runs between them for real. */
const N = 3;
const LENGTH = 100_003; // not a multiple of N: uneven slices
const { clients, inboxes, links, senders, members } = useRealPeers(N);
const random = (n: number, seed: number) => seededVector(n, seed);

type Transfer = 'direct' | 'relay';

function input(i: number, round: number, part: MemberRecord[], deadlineMs: number, transfer: Transfer, log: (m: string) => void): ExchangeInput {
  return {
    round, me: members[i], members: part, averageKey: K.gradAvg(round), length: LENGTH, rule: { rule: 'mean' }, fallback: 'none', log,
    deadlineMs, transfer: { chunkElements: 1000 }, local: clients[i], store: new InDbTensorStore(clients[i]), links: links[i], inbox: inboxes[i],
    direct: transfer === 'direct' ? senders[i] : undefined,
  };
}

/**
 * The exchange among the peers `who`. The others of `part` are silent: with `absent: 'deadline'`
 * they are waited for until a short deadline (the case of a peer that died), with 'sits-out'
 * they say first that they sit the round out, and the wait ends on that.
 */
async function runExchange(mode: ExchangeMode, round: number, who: number[], part = members, transfer: Transfer = 'direct', log: (m: string) => void = () => {}, absent: 'deadline' | 'sits-out' = 'sits-out') {
  for (const i of who) {
    await new InDbTensorStore(clients[i]).set(K.gradAvg(round), random(LENGTH, 100 + i));
    if (mode === exchangeSharded) await new InDbTensorStore(clients[i]).zeros(K.aggregate(round), LENGTH);
  }
  const silent = part.filter((m) => !who.some((i) => members[i].id === m.id));
  if (absent === 'sits-out') {
    for (const m of silent) for (const i of who) await links[i].sendValue(members[i].url, K.sitsOut(round, m.id), '1');
  }
  // Waited out only when a silent member says nothing; long enough that the present ones'
  // markers arrive on a loaded machine.
  const deadlineMs = silent.length > 0 && absent === 'deadline' ? 10_000 : 600_000;
  return Promise.all(who.map(async (i) => {
    const x = input(i, round, part, deadlineMs, transfer, log);
    return mode.aggregate(x, await mode.send(x));
  }));
}

describe('exchange between real peers', () => {
  it('"all" and "sharded", sent by the module or relayed, leave byte-identical aggregates on every peer', async () => {
    const all = await runExchange(exchangeAll, 1, [0, 1, 2]);
    const sharded = await runExchange(exchangeSharded, 2, [0, 1, 2]);
    const relayed = [...await runExchange(exchangeAll, 11, [0, 1, 2], members, 'relay'), ...await runExchange(exchangeSharded, 12, [0, 1, 2], members, 'relay')];
    const keys = [1, 2, 11, 12].map((r) => K.aggregate(r));
    const sums = await Promise.all(clients.flatMap((c) => keys.map((k) => new InDbTensorStore(c).checksum(k))));
    expect(new Set(sums).size).toBe(1);
    for (const r of relayed) expect(r.missing).toEqual([]);
    for (const r of [...all, ...sharded]) expect(r.missing).toEqual([]);

    // The aggregate is the mean of the three averages summed in member order (their names').
    const avgs = [0, 1, 2].map((i) => random(LENGTH, 100 + i));
    const got = await new InDbTensorStore(clients[1]).get(K.aggregate(2));
    expect(Buffer.from(got.buffer).equals(Buffer.from(meanInOrder(avgs).buffer))).toBe(true);

    // Bytes received per peer: N-1 vectors for "all", about 2(N-1)/N of one for "sharded".
    const vector = LENGTH * 4;
    for (const r of all) expect(r.bytesReceived).toBe((N - 1) * vector);
    for (const [i, r] of sharded.entries()) {
      const ranges = sliceRanges(LENGTH, N);
      const gathered = ranges.filter((_, j) => j !== i).reduce((s, x) => s + x.count * 4, 0);
      expect(r.bytesReceived).toBe((N - 1) * ranges[i].count * 4 + gathered);
      expect(r.bytesReceived).toBeLessThanOrEqual(Math.ceil((2 * (N - 1) / N) * vector) + 8);
    }
  });

  it('a peer that never sends is reported missing after the deadline, and the others still agree', async () => {
    const results = await runExchange(exchangeAll, 3, [0, 1], members, 'direct', () => {}, 'deadline');
    for (const r of results) {
      expect(r.missing).toEqual(['p2']);
      expect(r.contributors).toEqual(['p0', 'p1']);
    }
    const [a, b] = await Promise.all([0, 1].map((i) => new InDbTensorStore(clients[i]).checksum(K.aggregate(3))));
    expect(a).toBe(b);
  });

  it('a member that says it sits the round out is waited for no longer, and counted missing', async () => {
    // A deadline past the test's own timeout: the wait ends on the markers, or the test fails.
    const round = 40;
    const waiting = waitForMembers({ round, deadlineMs: 600_000, inbox: inboxes[0] }, [1, 2].map((i) => ({ id: `p${i}`, key: K.from(round, `p${i}`) })));
    await clients[0].set(K.from(round, 'p1'), '1');
    await clients[0].set(K.sitsOut(round, 'p2'), '1');
    await clients[0].publish(K.inbox, K.sitsOut(round, 'p2'));
    expect(await waiting).toEqual({ present: [K.from(round, 'p1')], missing: [K.from(round, 'p2')] });
  });

  it('a Redis that cannot reach a peer itself relays to it through the peer process, and says so once', async () => {
    // p0's route to p1 leads nowhere (as an address only the peer processes resolve would);
    // the peer process itself still reaches p1.
    const route = links[0].route.bind(links[0]);
    links[0].route = (url) => (url === members[1].url ? { host: '127.0.0.1', port: 1 } : route(url));
    const said: string[] = [];
    try {
      const results = await runExchange(exchangeAll, 5, [0, 1, 2], members, 'direct', (m) => said.push(m));
      for (const r of results) expect(r.missing).toEqual([]);
      const sums = await Promise.all(clients.map((c) => new InDbTensorStore(c).checksum(K.aggregate(5))));
      expect(new Set(sums).size).toBe(1);
      expect(said.filter((m) => m.startsWith("this peer's Redis cannot reach p1"))).toHaveLength(1);
      expect(said[0]).toMatch(/cannot reach p1 at redis:\/\/127\.0\.0\.1:\d+ itself \(.*cannot connect \(Connection refused\)\): relaying its tensors through this process/);
    } finally {
      links[0].route = route;
      await links[0].forget(members[1].url);
    }
  });

  it('sharded: a missing owner (it sits the round out) is reported and its slice falls back to the local average', async () => {
    const results = await runExchange(exchangeSharded, 4, [0, 1]);
    for (const r of results) expect(r.missing).toEqual(['p2']);
    const ranges = sliceRanges(LENGTH, N);
    const agg = await new InDbTensorStore(clients[0]).getRange(K.aggregate(4), ranges[2].offset, 5);
    const own = random(LENGTH, 100).subarray(ranges[2].offset, ranges[2].offset + 5);
    expect(Array.from(agg)).toEqual(Array.from(own));
  });
});

describe('a robust rule with too few averages', () => {
  it('falls back to the configured rule, saying so, or fails with a clear error', () => {
    const said: string[] = [];
    const krum = { rule: 'krum', byzantine: 1, select: 1 } as const;
    expect(ruleFor(krum, 5, 'none', 3, (m) => said.push(m))).toEqual(krum);
    expect(ruleFor(krum, 4, 'median', 3, (m) => said.push(m))).toEqual({ rule: 'median' });
    expect(said).toEqual(['round 3: Multi-Krum with f=1 needs at least 5 averages (n > 2f+2), and 4 arrived: aggregating with the median instead']);
    expect(() => ruleFor(krum, 4, 'none', 3, () => {})).toThrow('round 3: Multi-Krum with f=1 needs at least 5 averages (n > 2f+2), and 4 arrived; set fallbackAggregation to median or mean to go on with fewer');
    const trimmed = { rule: 'trimmed', trim: 1 } as const;
    expect(ruleFor(trimmed, 3, 'none', 0, () => {})).toEqual(trimmed);
    expect(ruleFor(trimmed, 2, 'mean', 0, () => {})).toEqual({ rule: 'mean' });
    expect(ruleFor({ rule: 'median' }, 1, 'none', 0, () => {})).toEqual({ rule: 'median' });
  });
});

describe('sendAsReady', () => {
  it('sends to the ready destinations together, a late one on its own when it is ready, and none that failed', async () => {
    let release!: (v: string) => void;
    const late = new Promise<string>((r) => { release = r; });
    const batches: string[][] = [];
    const sent = sendAsReady([Promise.resolve('a'), late, Promise.resolve(null), Promise.reject(new Error('cut off')), Promise.resolve('d')],
      async (ready) => { batches.push(ready); return ready; }, 50);
    // The ready ones went out after the patience, while the late one still waits.
    while (batches.length === 0) await new Promise((r) => setTimeout(r, 5));
    expect(batches).toEqual([['a', 'd']]);
    release('b');
    expect((await sent).sort()).toEqual(['a', 'b', 'd']);
    expect(batches).toEqual([['a', 'd'], ['b']]);
  });

  it('sends everything in one batch when all are ready within the patience', async () => {
    const batches: number[][] = [];
    await sendAsReady([1, 2, 3].map((n) => new Promise<number>((r) => setTimeout(() => r(n), n * 5))), async (b) => { batches.push(b); return b; }, 1_000);
    expect(batches).toEqual([[1, 2, 3]]);
  });
});
