import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseTrainingConfig } from '../../src/config/training.ts';
import type { GradientEvent } from '../../src/functions/events.ts';
import { HttpPlatform } from '../../src/platform/http/platform.ts';
import { serveFunctions, type FunctionServer } from '../../src/platform/http/server.ts';
import { LocalPlatform } from '../../src/platform/local/local-platform.ts';
import { K } from '../../src/peer/net/keys.ts';
import type { PeerOptions } from '../../src/peer/types.ts';
import { accumulationStats } from '../../src/tensor/in-db.ts';
import { closeRedis, connectRedis } from '../../src/tensor/redis-client.ts';
import { TestNetwork } from '../training/in-process-network.ts';
import { rerunFunctionDeadline } from '../../src/peer/round-work.ts';
import { behindFaultyProxy, type Fault } from '../../bench/function-proxy.ts';

/**
 * Failures that degrade: peers reach their functions over HTTP through a seeded proxy that
 * fails a fifth of the calls (gateway 500, reset, delay past the timeout, reset after the
 * function ran). The functions are the real handlers on the real local platform (worker
 * threads) behind `function serve`'s server. Every round still averages every batch, the
 * replicas stay identical, and the run ends with the clean run's checksum: sums are exact and
 * order-free, so neither retries nor arrival order change a byte.
 */
const config = parseTrainingConfig({
  model: { name: 'cnn', width: 0.25 }, dataset: 'synthetic', syntheticSize: 1024, batchSize: 32, batchesPerRound: 3,
  maxRounds: 6, epochs: 1000, checkEvery: 1000, validationSize: 0, optimizer: { kind: 'adam', lr: 0.003 }, seed: 11,
  deadlineMs: 30_000, functionDeadlineMs: 15_000,
});

let backend: LocalPlatform;
let functions: FunctionServer;

beforeAll(async () => {
  backend = new LocalPlatform({ workers: 2 });
  await backend.warm();
  functions = await serveFunctions({ handle: (name, event) => backend.invoke(name, event) });
});

afterAll(async () => {
  await functions?.close();
  await backend?.close();
});

interface RunOptions {
  kinds?: readonly Fault[];
  passFirst?: number;
  delayMs?: number;
  timeoutMs?: number;
  elastic?: boolean;
  maxRounds?: number;
  repeatsPass?: boolean;
}

/** A 2-peer run through a proxy failing `fraction` of the calls; its metrics and parameters. */
async function run(fraction: number, seed: number, o: RunOptions = {}) {
  // The timeout sits below the proxy's delay.
  const { proxy, platform, close } = await behindFaultyProxy(functions.url, {
    seed, fraction, delayMs: o.delayMs ?? 1_500, kinds: o.kinds, passFirst: o.passFirst, repeatsPass: o.repeatsPass, timeoutMs: o.timeoutMs ?? 1_000, elastic: o.elastic,
  });
  const net = new TestNetwork(o.maxRounds ? { ...config, maxRounds: o.maxRounds } : config, platform);
  try {
    const peers = await net.foundingGroup(2);
    const outcomes = await Promise.all(peers.map((p) => p.outcome!));
    const params = await Promise.all([0, 1].map((i) => net.params(i)));
    await net.close(peers);
    // Each peer's module counters: what its gradient sums counted, repeated, withdrew, refused.
    const stats = await Promise.all([0, 1].map(async (i) => {
      const c = await connectRedis({ url: net.servers[i]!.url });
      try { return await accumulationStats(c); } finally { await closeRedis(c); }
    }));
    return { outcomes, peers, params, stats, injected: { ...proxy.injected }, calls: proxy.calls };
  } finally {
    await net.dispose();
    await close();
  }
}

describe('function faults degrade a round, never a peer', () => {
  it('20% failing calls: every batch counted once, replicas identical, the clean run\'s final checksum (also on the local platform with the other exchange)', async () => {
    const clean = await run(0, 1);
    const faulty = await run(0.2, 1);
    for (const r of [clean, faulty]) {
      expect(r.outcomes.map((o) => o.state), r.peers.map((p) => p.logs.join('\n')).join('\n')).toEqual(['done', 'done']);
      expect(r.outcomes[0].checksum).toBe(r.outcomes[1].checksum);
    }
    // Faults of every kind were injected, and yet no batch was given up and nobody dropped.
    for (const n of Object.values(faulty.injected)) expect(n).toBeGreaterThan(0);
    // Each batch took one call that counted, and every fault but a reset after the function
    // ran (whose result the module kept) one more. Not a comparison with the clean run's
    // calls: on a busy machine that one retries calls cut by the timeout too.
    const batches = faulty.peers.length * config.maxRounds * config.batchesPerRound;
    expect(faulty.calls).toBeGreaterThanOrEqual(batches + faulty.injected['500'] + faulty.injected.reset + faulty.injected.delay);
    for (const p of faulty.peers) {
      expect(p.rounds).toHaveLength(config.maxRounds);
      expect(p.rounds.filter((m) => m.failedBatches > 0 || m.dropped.length > 0)).toEqual([]);
    }
    // The module's counters: every batch of every round counted exactly once, in both runs.
    for (const r of [clean, faulty]) {
      for (const st of r.stats) {
        expect(st.counted).toBe(config.maxRounds * config.batchesPerRound);
        expect(st.completed).toBe(config.maxRounds);
      }
    }
    // A call cut after its function pushed is not called again: the peer reads the result the
    // module kept with the counted gradient (PL.PUSH RESULT).
    const landed = faulty.peers.flatMap((p) => p.rounds).reduce((n, m) => n + (m.landed ?? 0), 0);
    expect(landed).toBeGreaterThanOrEqual(faulty.injected['reset-after']);
    // Sums are exact and order-free, so retries and arrival order change nothing: the faulty
    // run ends with the clean run's parameters, bit for bit.
    expect(faulty.outcomes[0].checksum).toBe(clean.outcomes[0].checksum);
    expect(Buffer.from(faulty.params[0].buffer).equals(Buffer.from(clean.params[0].buffer))).toBe(true);

    // The same seed on the local platform straight (worker threads, no HTTP), with the other
    // exchange: the same final checksum again.
    const net = new TestNetwork({ ...config, exchange: config.exchange === 'all' ? 'sharded' : 'all' }, backend);
    try {
      const peers = await net.foundingGroup(2);
      const outcomes = await Promise.all(peers.map((p) => p.outcome!));
      expect(outcomes.map((o) => o.checksum)).toEqual([clean.outcomes[0].checksum, clean.outcomes[0].checksum]);
      await net.close(peers);
    } finally {
      await net.dispose();
    }
  });
});

describe('hedged calls', () => {
  it('on an elastic platform, a call held past the function deadline is answered by its copy: no batch given up, the clean run\'s checksum', async () => {
    // The held calls would never answer within the run: without a second copy each of their
    // batches would be given up at the function deadline. The first 4 rounds pass, so each
    // peer knows its usual call time before any call is held; a copy always passes (the
    // stalled instance was the fault, not the call).
    const held = { kinds: ['delay'] as const, passFirst: 24, delayMs: 600_000, timeoutMs: 600_000, elastic: true, maxRounds: 8, repeatsPass: true };
    const clean = await run(0, 3, { maxRounds: 8 });
    const faulty = await run(0.2, 3, held);
    expect(faulty.injected.delay).toBeGreaterThan(0);
    for (const r of [clean, faulty]) expect(r.outcomes.map((o) => o.state), r.peers.map((p) => p.logs.join('\n')).join('\n')).toEqual(['done', 'done']);
    const rounds = faulty.peers.flatMap((p) => p.rounds);
    expect(rounds.filter((m) => m.failedBatches > 0 || m.dropped.length > 0)).toEqual([]);
    // Every held call got its copy (others may have too, on a busy machine: a copy costs nothing here).
    expect(rounds.reduce((n, m) => n + (m.hedges ?? 0), 0)).toBeGreaterThanOrEqual(faulty.injected.delay);
    expect(faulty.calls).toBeGreaterThanOrEqual(8 * 6 + faulty.injected.delay);
    expect(faulty.outcomes.map((o) => o.checksum)).toEqual(clean.outcomes.map((o) => o.checksum));
  });
});

/**
 * Holds peer `i`'s end of `round` (its agreement, where a coordinator admits joiners) until a
 * join request waits in its Redis: a peer that sat the round out is then admitted at that
 * round's end, whatever the machine's pace, not at whichever end its request reaches.
 */
function admitsAt(net: TestNetwork, i: number, round: number): Pick<PeerOptions, 'beforePhase'> {
  return {
    beforePhase: async (phase, r) => {
      if (phase !== 'verifying' || r !== round) return;
      while (Number(await net.clients[i].lLen(K.joinRequests)) === 0) await new Promise((res) => setTimeout(res, 20));
    },
  };
}

/**
 * Deadlines of the tests whose functions fail a whole round: that round waits the function
 * deadline out, and every other round's calls (a pair's 6 on 2 workers, behind HTTP) must meet
 * it on a loaded machine, or a peer sits an unplanned round out and the rounds asserted differ.
 */
const FAILING_ROUND = { deadlineMs: 20_000, functionDeadlineMs: 10_000 };
/** The network's only member: its failed round waits the function deadline out, then runs again. */
const ALONE_ROUND = { deadlineMs: 8_000, functionDeadlineMs: 2_000 };

describe('a batch that keeps failing', () => {
  /** Functions behind HTTP that fail (as a lost Redis does: worth a retry) when `fails(event)`. */
  async function failingFunctions(fails: (e: GradientEvent) => boolean): Promise<FunctionServer> {
    return serveFunctions({
      handle: (name, event) => {
        if (name === 'gradient' && fails(event as GradientEvent)) {
          return Promise.reject(new Error(`cannot reach Redis at ${(event as GradientEvent).redis.url}: connect ECONNREFUSED (injected)`));
        }
        return backend.invoke(name, event);
      },
    });
  }

  /**
   * Runs `body` on a network whose functions fail when `fails(event)` (behind HTTP, one try per
   * call), with `overrides` of the test config; everything is closed after, pass or fail.
   * `warm` gives every instance the model first: behind HTTP the peers cannot warm it, and a
   * cold round 0 on a busy machine would miss a short function deadline.
   */
  async function onFailingFunctions(fails: (e: GradientEvent) => boolean, overrides: Partial<typeof config>, body: (net: TestNetwork) => Promise<void>, warm = true): Promise<void> {
    const server = await failingFunctions(fails);
    if (warm) await backend.warm([{ model: config.model }]);
    const platform = new HttpPlatform({ url: server.url, attempts: 1 });
    const net = new TestNetwork(parseTrainingConfig({ ...config, ...overrides }), platform);
    try {
      await body(net);
    } finally {
      await net.dispose();
      await platform.close();
      await server.close();
    }
  }

  /** Every peer ended done; else the failure carries each one's log and error. */
  function expectAllDone(outcomes: { state: string; error: string | null }[], logs: string[]): void {
    expect(outcomes.map((o) => o.state), `${logs.join('\n')}\n${outcomes.map((o) => o.error).join('\n')}`).toEqual(outcomes.map(() => 'done'));
  }

  it('is given up at the function deadline: the round averages the others, and nobody is dropped', async () => {
    // Round 1 takes batches b3, b4, b5 of each shard: b4 never gets through, failing at once on
    // every try, so the round waits exactly the function deadline for it. That deadline leaves
    // a busy machine room for the other calls (at 1 s, round 0's first calls missed it at load
    // 15, run alone; 6 calls queue on 2 workers).
    await onFailingFunctions((e) => e.contributionId === 'b4' && e.round === 1, { functionDeadlineMs: 10_000, maxRounds: 3 }, async (net) => {
      const peers = await net.foundingGroup(2);
      const outcomes = await Promise.all(peers.map((p) => p.outcome!));
      expectAllDone(outcomes, peers.map((p) => p.logs.join('\n')));
      expect(outcomes[0].checksum).toBe(outcomes[1].checksum);
      for (const p of peers) {
        expect(p.rounds.map((m) => m.failedBatches)).toEqual([0, 1, 0]);
        expect(p.rounds.flatMap((m) => m.dropped)).toEqual([]);
        expect(p.logs.join('\n')).toMatch(/round 1: gradient\(s\) b4 failed until the function deadline \(.*injected.*\); averaging the 2 of 3 that arrived/);
      }
      // The average was closed inside the database: a late b2 is refused there.
      await expect(net.clients[0].sendCommand(['PL.ACCUM', 'g:1:sum', 'g:1:avg', 'b4', '3', Buffer.alloc(4 * (await net.params(0)).length), 'ROUND', '1']))
        .rejects.toThrow(/closed at 2 contributions; contribution "b4" came too late/);
      await net.close(peers);
    });
  });

  it('a peer none of whose gradients arrive sits the round out, rejoins, and ends identical', async () => {
    // Warm instances: round 0's calls are then as fast as the others (a founder sitting round 0
    // out on a busy machine is the next test's case, not this one's).
    let peer1Url = '';
    await onFailingFunctions((e) => e.redis.url === peer1Url && e.round === 2, { ...FAILING_ROUND, maxRounds: 8 }, async (net) => {
      await net.reset(2);
      peer1Url = net.servers[1].url;
      const peers = await net.foundingGroup(2, (i) => (i === 0 ? admitsAt(net, 0, 2) : {}));
      const outcomes = await Promise.all(peers.map((p) => p.outcome!));
      const logs = peers.map((p) => p.logs.join('\n'));
      expectAllDone(outcomes, logs);
      expect(outcomes[0].checksum).toBe(outcomes[1].checksum);
      expect(logs[1]).toMatch(/none of its 3 gradient\(s\) arrived before the function deadline.*asking to rejoin/s);
      expect(logs[1]).toMatch(/joined through/);
      // The others went on without it (it said it sat the round out) and admitted it again at once.
      expect(logs[0]).toMatch(/round 2: p01 sat the round out \(none of its gradients arrived\)/);
      expect(logs[0]).not.toMatch(/p01 missed the \d+ ms deadline/);
      expect(logs[0]).toMatch(/round 2: admitted p01 from round 3/);
      expect(peers[1].rounds.map((m) => m.round)).not.toContain(2);
      expect(peers[0].rounds.at(-1)!.members).toEqual(['p00', 'p01']);
      await net.close(peers);
    });
  });

  it('the founder of a pair, none of whose round-0 gradients arrive, sits round 0 out: the other goes on alone and admits it', async () => {
    // The founder is the lowest id, which breaks a tie of a pair's quorum: the other member
    // holds one only because the founder said it sat the round out (K.sitsOut). The function
    // deadline is one a busy machine's warm calls meet: only the founder's round-0 calls fail.
    let founderUrl = '';
    await onFailingFunctions((e) => e.redis.url === founderUrl && e.round === 0, { ...FAILING_ROUND, maxRounds: 4 }, async (net) => {
      await net.reset(2);
      founderUrl = net.servers[0].url;
      const peers = await net.foundingGroup(2, (i) => (i === 1 ? admitsAt(net, 1, 0) : {}));
      const outcomes = await Promise.all(peers.map((p) => p.outcome!));
      const logs = peers.map((p) => p.logs.join('\n'));
      expectAllDone(outcomes, logs);
      expect(outcomes[0].checksum).toBe(outcomes[1].checksum);
      expect(logs[0]).toMatch(/none of its 3 gradient\(s\) arrived before the function deadline.*asking to rejoin/s);
      expect(logs[0]).toMatch(/joined through/);
      expect(logs[1]).toMatch(/round 0: admitted p00 from round 1/);
      expect(logs[1]).not.toMatch(/not a majority/);
      expect(peers[0].rounds.map((m) => m.round)).toEqual([1, 2, 3]);
      expect(peers[1].rounds.map((m) => m.round)).toEqual([0, 1, 2, 3]);
      expect(peers[1].rounds[0]!.members).toEqual(['p00', 'p01']);
      expect(peers[1].rounds.at(-1)!.members).toEqual(['p00', 'p01']);
      await net.close(peers);
    });
  });

  it('a round every member sits out is run again by the lowest id, which admits the others', async () => {
    // Round 2's calls fail for both peers until the lowest id says it runs the round again.
    let again = false;
    await onFailingFunctions((e) => e.round === 2 && !again, { ...FAILING_ROUND, maxRounds: 5 }, async (net) => {
      const peers = await net.foundingGroup(2, (i) => (i === 0 ? admitsAt(net, 0, 2) : {}));
      void net.log(peers[0]!, /runs round 2 again/).then(() => { again = true; }, () => {}); // its absence fails the log assertions below
      const outcomes = await Promise.all(peers.map((p) => p.outcome!));
      const logs = peers.map((p) => p.logs.join('\n'));
      expectAllDone(outcomes, logs);
      expect(outcomes[0].checksum).toBe(outcomes[1].checksum);
      const given = rerunFunctionDeadline(parseTrainingConfig({ ...config, ...FAILING_ROUND }), 1);
      expect(logs[0]).toMatch(new RegExp(`at round 2 \\(none of its 3 gradient\\(s\\) arrived before the function deadline.*every member sat round 2 out; the lowest id, it runs round 2 again \\(1 of 3\\), its calls given ${given} ms`, 's'));
      expect(logs[0]).toMatch(/round 2: admitted p01 from round 3/);
      expect(logs[1]).toMatch(/none of its 3 gradient\(s\) arrived before the function deadline.*asking to rejoin/s);
      expect(peers[0].rounds.map((m) => m.round)).toEqual([0, 1, 2, 3, 4]);
      expect(peers[1].rounds.map((m) => m.round)).toEqual([0, 1, 3, 4]);
      expect(peers[0].rounds.at(-1)!.members).toEqual(['p00', 'p01']);
      await net.close(peers);
    });
  });

  it('the network\'s only member, none of whose gradients arrive, runs the round again and goes on', async () => {
    // Round 2's calls fail until the peer says it runs the round again (the event), then pass.
    let again = false;
    await onFailingFunctions((e) => e.round === 2 && !again, { ...ALONE_ROUND, maxRounds: 5 }, async (net) => {
      await net.reset(1);
      // Every phase the peer writes to its state, as Redis receives it: a joiner asking it to
      // admit it reads "failed" there as the network's end, so the round it runs again never says it.
      const phases: string[] = [];
      const monitor = await connectRedis({ url: net.servers[0].url });
      try {
        await monitor.monitor((line) => {
          if (line.includes(`"SET" "${K.state}"`)) phases.push(/phase\\":\\"(\w+)/.exec(line)?.[1] ?? line);
        });
        const [alone] = await net.foundingGroup(1);
        void net.log(alone!, /runs round 2 again/).then(() => { again = true; }, () => {}); // its absence fails the log assertions below
        const outcome = await alone!.outcome!;
        const logs = alone!.logs.join('\n');
        expectAllDone([outcome], [logs]);
        expect(phases).toContain('starting');
        expect(phases).not.toContain('failed');
        const given = rerunFunctionDeadline(parseTrainingConfig({ ...config, ...ALONE_ROUND }), 1);
        expect(logs).toMatch(new RegExp(`at round 2 \\(none of its 3 gradient\\(s\\) arrived before the function deadline.*the network's only member, it runs round 2 again \\(1 of 3\\), its calls given ${given} ms`, 's'));
        // Every round ran once to the end, round 2 on its second try.
        expect(alone!.rounds.map((m) => m.round)).toEqual([0, 1, 2, 3, 4]);
        await net.close([alone!]);
      } finally {
        await closeRedis(monitor);
      }
    }, false);
  });
});
