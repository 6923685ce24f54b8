import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedisServer, type RedisServer } from '../../cluster/redis-server.ts';
import type { EvaluateEvent, GradientEvent } from '../../functions/events.ts';
import { maxAbsDiff, readFloats, seed, snapshot, type Seeded } from '../../functions/test-fixture.ts';
import { closeRedis, connectRedis, type Redis } from '../../tensor/redis-client.ts';
import { lambdaCost } from '../platform.ts';
import { LocalPlatform } from './local-platform.ts';
import type { TestHooks } from './protocol.ts';

// REAL worker threads (TypeScript through tsx), a REAL redis-server with the module, real MNIST.
// Hangs and crashes use the pool's test-only `__test` event hooks (workers honour them only
// when the platform is created with `testHooks: true`; see protocol.ts).
let server: RedisServer;
let client: Redis;
let s: Seeded;
let platform: LocalPlatform;
const tmp = mkdtempSync(join(tmpdir(), 'peerless-local-'));
const PRICE_PER_GB_S = 1; // round numbers, so the cost check is exact arithmetic

beforeAll(async () => {
  process.env.PEERLESS_BACKEND = 'wasm';
  server = await startRedisServer();
  client = await connectRedis({ url: server.url });
  s = await seed(client, { url: server.url });
  platform = new LocalPlatform({ workers: 2, timeoutMs: 60_000, backoffMs: 10, testHooks: true, prices: { usdPerGbSecond: PRICE_PER_GB_S, usdPerRequest: 0 } });
});
afterAll(async () => {
  await platform?.close();
  if (client) await closeRedis(client);
  await server?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

const withHooks = <E extends GradientEvent | EvaluateEvent>(e: E, h: TestHooks): E => ({ ...e, __test: h });

describe('local platform: the gradient function end to end', () => {
  it('two batches on two cold workers: the last push writes the average of both gradients', async () => {
    const ev = (b: number) => s.event(b, { sumKey: 'r:1:gsum', avgKey: 'r:1:gavg', expected: 2 });
    const [r0, r1] = await Promise.all([platform.invoke('gradient', ev(0)), platform.invoke('gradient', ev(1))]);
    expect([r0.count, r1.count].sort()).toEqual([1, 2]);
    expect(r0.done || r1.done).toBe(true);
    expect(r0.samples).toBe(64);
    expect(r0.loss).toBeCloseTo(s.reference[0].loss, 5);
    expect(r1.accuracy).toBeCloseTo(s.reference[1].correct / 64, 10);
    const avg = (await readFloats(client, 'r:1:gavg'))!;
    const mean = s.reference[0].gradient.map((g, i) => (g + s.reference[1].gradient[i]) / 2);
    expect(avg.length).toBe(s.size);
    expect(maxAbsDiff(avg, mean)).toBeLessThan(1e-6);
    expect(platform.metrics()).toMatchObject({ invocations: 2, failures: 0, retries: 0, coldStarts: 2, warmStarts: 0 });
  });

  it('the same contribution id again counts once (a retried function cannot count twice)', async () => {
    const before = (await readFloats(client, 'r:1:gavg'))!;
    const r = await platform.invoke('gradient', s.event(0, { sumKey: 'r:1:gsum', avgKey: 'r:1:gavg', expected: 2 }));
    expect(r).toMatchObject({ count: 2, done: true });
    expect(maxAbsDiff((await readFloats(client, 'r:1:gavg'))!, before)).toBe(0);
    expect(platform.metrics().warmStarts).toBe(1);
  });

  it('a layout hash mismatch: one-line error naming both hashes, not retried, nothing written', async () => {
    const before = await snapshot(client);
    const m0 = platform.metrics();
    await expect(platform.invoke('gradient', s.event(0, { layoutHash: 'deadbeefdeadbeef', sumKey: 'r:2:gsum', avgKey: 'r:2:gavg' })))
      .rejects.toThrow(new RegExp(`^gradient: layout hash mismatch: the event expects deadbeefdeadbeef, "model:layout" holds ${s.layoutHash}$`));
    expect(await snapshot(client)).toEqual(before);
    const m1 = platform.metrics();
    expect(m1.retries - m0.retries).toBe(0);
    expect(m1.failures - m0.failures).toBe(1);
  });

  it('a missing batch key: an error naming the key, not retried', async () => {
    const m0 = platform.metrics();
    await expect(platform.invoke('gradient', s.event(9, { sumKey: 'r:2:gsum', avgKey: 'r:2:gavg' })))
      .rejects.toThrow(/^gradient: missing key "data:batch:9:x"$/);
    await expect(platform.invoke('gradient', { ...s.event(0, {}), expected: -1 }))
      .rejects.toThrow(/^invalid gradient event: expected: /);
    expect(platform.metrics().retries - m0.retries).toBe(0);
  });

  it('a refused connection may pass: retried with backoff, retries counted', async () => {
    const m0 = platform.metrics();
    await expect(platform.invoke('gradient', s.event(0, { redis: { url: 'redis://127.0.0.1:1' } })))
      .rejects.toThrow(/^gradient: cannot reach Redis at redis:\/\/127\.0\.0\.1:1.* \(after 3 attempts\)$/);
    const m1 = platform.metrics();
    expect(m1.retries - m0.retries).toBe(2);
    expect(m1.invocations - m0.invocations).toBe(1);
  });

  it('a worker that crashes is replaced and the retry succeeds', async () => {
    const once = join(tmp, 'crash-once');
    const m0 = platform.metrics();
    const r = await platform.invoke('gradient', withHooks(s.event(1, { sumKey: 'r:3:gsum', avgKey: 'r:3:gavg' }), { exitOnceFile: once }));
    expect(existsSync(once)).toBe(true);
    expect(r).toMatchObject({ count: 1, done: true });
    expect(platform.metrics().retries - m0.retries).toBe(1);
    expect(platform.workerThreadIds().length).toBe(2);
  });

  it('evaluates the real MNIST test set in chunks', async () => {
    const rs = await Promise.all(Array.from({ length: 10 }, (_, i) => platform.invoke('evaluate', s.evalEvent(i * 1000, 1000))));
    expect(rs.reduce((n, r) => n + r.samples, 0)).toBe(10_000);
    const correct = rs.reduce((n, r) => n + r.correct, 0);
    expect(correct).toBeGreaterThanOrEqual(0);
    expect(correct).toBeLessThanOrEqual(10_000);
    for (const r of rs) expect(Number.isFinite(r.loss)).toBe(true);
  });

  it('queues past the concurrency limit in FIFO order', async () => {
    // Each call waits for its own gate file: the test, not the clock, decides when it ends.
    const dir = mkdtempSync(join(tmpdir(), 'peerless-fifo-'));
    const gate = (i: number) => join(dir, `go-${i}`);
    const open = (i: number) => writeFileSync(gate(i), '');
    try {
      const order: number[] = [];
      const calls = Array.from({ length: 6 }, (_, i) =>
        platform.invoke('evaluate', withHooks(s.evalEvent(i, 1), { gateFile: gate(i) })).then(() => order.push(i)));
      // Calls 2-5 may end at once when they start, but two workers are held by calls 0 and 1.
      for (const i of [2, 3, 4, 5]) open(i);
      open(0);
      await calls[0];
      // Call 0's worker takes the queue in order while call 1 still holds the other.
      await Promise.all(calls.slice(2));
      expect(order).toEqual([0, 2, 3, 4, 5]);
      open(1);
      await calls[1];
      expect(order).toEqual([0, 2, 3, 4, 5, 1]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('meters every call and prices it like Lambda (billed memory x duration per try)', () => {
    const m = platform.metrics();
    const records = platform.invocations();
    expect(m.invocations).toBe(records.length);
    expect(m.coldStarts + m.warmStarts).toBe(records.reduce((n, r) => n + r.attempts, 0));
    // Each try is billed in whole ms at 2048 MB = 2 GB, $1 per GB-second, no request fee.
    expect(m.estimatedCostUsd).toBeCloseTo((m.billedMs / 1000) * 2 * PRICE_PER_GB_S, 9);
    expect(records.every((r) => r.memoryMb === 2048)).toBe(true);
    expect(lambdaCost([...records], { usdPerGbSecond: PRICE_PER_GB_S, usdPerRequest: 0 })).toBeLessThanOrEqual(m.estimatedCostUsd + 1e-9);
  });

  it('probes every instance\'s memory, each when it is free', async () => {
    await platform.warm();
    const dir = mkdtempSync(join(tmpdir(), 'peerless-probe-'));
    try {
      const order: string[] = [];
      const held = platform.invoke('evaluate', withHooks(s.evalEvent(0, 1), { gateFile: join(dir, 'go') })).then(() => order.push('call'));
      const probe = platform.instanceMemory().then((m) => { order.push('probe'); return m; });
      writeFileSync(join(dir, 'go'), '');
      const [memory] = await Promise.all([probe, held]);
      // One instance was held by the call: its probe waited for it.
      expect(order).toEqual(['call', 'probe']);
      expect(memory).toHaveLength(2);
      for (const m of memory) {
        expect(m.heapUsedBytes).toBeGreaterThan(1_000_000);
        expect(m.collected).toBe(typeof (globalThis as { gc?: unknown }).gc === 'function');
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a call its caller abandons ends its instance, so the next call does not wait behind it', async () => {
    const p = new LocalPlatform({ workers: 1, timeoutMs: 600_000, backoffMs: 10, testHooks: true });
    const dir = mkdtempSync(join(tmpdir(), 'peerless-abandon-'));
    try {
      await p.warm();
      const before = p.workerThreadIds();
      const stop = new AbortController();
      const started = join(dir, 'started');
      // Never released: only the abandonment can free the one instance.
      const hung = p.invoke('evaluate', withHooks(s.evalEvent(0, 1), { startedFile: started, gateFile: join(dir, 'never') }), { signal: stop.signal });
      while (!existsSync(started)) await new Promise((r) => setTimeout(r, 10));
      // A second call abandoned while it waits in the queue leaves it.
      const queued = new AbortController();
      const waiting = p.invoke('evaluate', s.evalEvent(0, 1), { signal: queued.signal });
      queued.abort();
      await expect(waiting).rejects.toThrow(/evaluate: abandoned by the caller before it ran/);
      stop.abort();
      await expect(hung).rejects.toThrow(/evaluate: abandoned by the caller \(instance terminated and replaced\)/);
      const r = await p.invoke('evaluate', s.evalEvent(0, 1));
      expect(r.samples).toBe(1);
      expect(p.workerThreadIds()).not.toEqual(before);
      // Neither abandonment is retried; the queued one, which never ran, is not billed.
      expect(p.metrics()).toMatchObject({ invocations: 3, failures: 2, retries: 0 });
    } finally {
      await p.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  // How long a warm round trip takes is measured by `peerless bench serverless` (its overhead
  // line), not asserted here: a timed assertion fails on a busy machine.
  it('answers warm round trips, one after another, without spawning new workers', async () => {
    await platform.warm();
    const before = platform.workerThreadIds();
    for (let i = 0; i < 300; i++) expect(await platform.ping()).toBeGreaterThan(0);
    expect(platform.workerThreadIds()).toEqual(before);
  });
});

describe('local platform: memory limit', () => {
  it('a function that outgrows the heap limit fails clearly and is not retried', async () => {
    const p = new LocalPlatform({ workers: 1, memoryMb: 1024, workerHeapMb: 256, attempts: 3, backoffMs: 10, testHooks: true });
    try {
      await expect(p.invoke('evaluate', withHooks(s.evalEvent(0, 1), { allocateMb: 4096 })))
        .rejects.toThrow(/^evaluate: function instance ran out of memory \(heap limit 256 MB\)$/);
      expect(p.metrics()).toMatchObject({ invocations: 1, failures: 1, retries: 0 });
      // Billed at the configured function memory, not the heap limit.
      expect(p.invocations()[0].memoryMb).toBe(1024);
    } finally {
      await p.close();
    }
  });
});

describe('local platform: timeouts', () => {
  /**
   * Every call's bound, the hang's too (waited out twice): long enough that the warm call and
   * the replacement's cold one (the model built again) meet it on a loaded machine, where a
   * timeout would retry them and change the counts below.
   */
  const TIMEOUT_MS = 10_000;
  let p: LocalPlatform;
  beforeAll(async () => {
    p = new LocalPlatform({ workers: 1, timeoutMs: TIMEOUT_MS, attempts: 2, backoffMs: 10, testHooks: true });
    await p.warm([{ model: s.event(0, {}).model, samples: s.event(0, {}).samples }]);
  });
  afterAll(async () => p?.close());

  it('warmed with the model, the first gradient call finds it built (a peer warms before its first round)', async () => {
    const r = await p.invoke('gradient', s.event(0, { sumKey: 'r:5:gsum', avgKey: 'r:5:gavg' }));
    expect(r).toMatchObject({ count: 1, done: true });
    expect(r.modelBuilt).toBeUndefined();
  });

  it('a function that hangs (CPU-bound) is terminated at the timeout, retried, and its worker replaced', async () => {
    const [before] = p.workerThreadIds();
    // The call spins for 10 minutes; the test's own timeout, far below that, is what shows the
    // platform did not wait it out (a bound on the clock here failed on a loaded machine).
    await expect(p.invoke('gradient', withHooks(s.event(0, { sumKey: 'r:4:gsum', avgKey: 'r:4:gavg' }), { sleepMs: 600_000, spin: true })))
      .rejects.toThrow(`gradient: timed out after ${TIMEOUT_MS} ms (instance terminated and replaced) (after 2 attempts)`);
    const m = p.metrics();
    expect(m).toMatchObject({ invocations: 2, failures: 1, retries: 1 });
    expect(m.billedMs).toBeGreaterThanOrEqual(2 * TIMEOUT_MS);
    expect(p.workerThreadIds()).toHaveLength(1);
    expect(p.workerThreadIds()[0]).not.toBe(before);
    // The replacement works (a cold start) and nothing of the hung calls was pushed.
    const r = await p.invoke('gradient', s.event(0, { sumKey: 'r:4:gsum', avgKey: 'r:4:gavg' }));
    expect(r).toMatchObject({ count: 1, done: true });
    // The call above and try 1 ran on the pre-warmed worker; try 2 and this call each on a fresh replacement.
    expect(p.metrics()).toMatchObject({ coldStarts: 2, warmStarts: 2 });
  });
});
