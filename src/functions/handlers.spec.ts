import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedisServer, type RedisServer } from '../cluster/redis-server.ts';
import { closeRedis, connectRedis, type Redis } from '../tensor/redis-client.ts';
import { isTransient } from './errors.ts';
import type { GradientEvent } from './events.ts';
import { handle } from './handlers.ts';
import { maxAbsDiff, readFloats, seed, snapshot, type Seeded } from './test-fixture.ts';

// The handlers in this process (no platform), on a REAL redis-server with the module.
let server: RedisServer;
let client: Redis;
let s: Seeded;

beforeAll(async () => {
  process.env.PEERLESS_BACKEND = 'wasm';
  server = await startRedisServer();
  client = await connectRedis({ url: server.url });
  s = await seed(client, { url: server.url });
});
afterAll(async () => {
  if (client) await closeRedis(client);
  await server?.stop();
});

describe('gradient handler', () => {
  it('pushes the batch gradient in chunks (PL.PUSH); the single expected push writes the average', async () => {
    const r = await handle('gradient', s.event(0, { sumKey: 'h:sum', avgKey: 'h:avg' }));
    expect(r).toMatchObject({ samples: 64, count: 1, done: true });
    expect(r.loss).toBeCloseTo(s.reference[0].loss, 5);
    expect(r.accuracy).toBeCloseTo(s.reference[0].correct / 64, 10);
    const avg = (await readFloats(client, 'h:avg'))!;
    expect(avg.length).toBe(s.size);
    expect(maxAbsDiff(avg, s.reference[0].gradient)).toBeLessThan(1e-6);
    for (const k of ['loadMs', 'computeMs', 'pushMs'] as const) expect(r.timings[k]).toBeGreaterThan(0);
    expect(r.backend).toBe('wasm');
  });

  it('computes on the backend the event names (the plan\'s), and says which', async () => {
    const r = await handle('gradient', s.event(0, { sumKey: 'h:cpu:sum', avgKey: 'h:cpu:avg', backend: 'cpu' }));
    expect(r.backend).toBe('cpu');
    expect(maxAbsDiff((await readFloats(client, 'h:cpu:avg'))!, s.reference[0].gradient)).toBeLessThan(1e-5);
    // The next event without one stays on the instance's backend until another is named.
    expect((await handle('gradient', s.event(0, { sumKey: 'h:w:sum', avgKey: 'h:w:avg', backend: 'wasm' }))).backend).toBe('wasm');
  });

  it('accepts the layout stored as layout JSON (with a "hash" field) too', async () => {
    await client.set('h:layout-json', JSON.stringify({ model: 'cnn', hash: s.layoutHash, entries: [] }));
    const r = await handle('gradient', s.event(1, { layoutKey: 'h:layout-json', sumKey: 'h:sum2', avgKey: 'h:avg2' }));
    expect(r.done).toBe(true);
  });

  it('a layout hash mismatch is one line naming both hashes, and writes nothing', async () => {
    const before = await snapshot(client);
    await expect(handle('gradient', s.event(0, { layoutHash: 'deadbeefdeadbeef', sumKey: 'h:bad:sum', avgKey: 'h:bad:avg' })))
      .rejects.toThrow(`gradient: layout hash mismatch: the event expects deadbeefdeadbeef, "model:layout" holds ${s.layoutHash}`);
    // The event and the peer agree, but this function's model has another layout (other width).
    await client.set('h:other-layout', 'deadbeefdeadbeef');
    await expect(handle('gradient', s.event(0, { layoutKey: 'h:other-layout', layoutHash: 'deadbeefdeadbeef', sumKey: 'h:bad:sum', avgKey: 'h:bad:avg' })))
      .rejects.toThrow(`gradient: layout hash mismatch: this function's cnn has layout ${s.layoutHash}, the peer's model deadbeefdeadbeef`);
    await client.del('h:other-layout');
    expect(await snapshot(client)).toEqual(before);
  });

  it('a missing key is an error naming the key, and writes nothing', async () => {
    const before = await snapshot(client);
    await expect(handle('gradient', s.event(7, { sumKey: 'h:m:sum', avgKey: 'h:m:avg' })))
      .rejects.toThrow('gradient: missing key "data:batch:7:x"');
    await expect(handle('gradient', s.event(0, { paramsKey: 'nope:params', sumKey: 'h:m:sum', avgKey: 'h:m:avg' })))
      .rejects.toThrow('gradient: missing key "nope:params" (parameters)');
    await expect(handle('gradient', s.event(0, { layoutKey: 'nope:layout', sumKey: 'h:m:sum', avgKey: 'h:m:avg' })))
      .rejects.toThrow(/^gradient: missing key "nope:layout"/);
    expect(await snapshot(client)).toEqual(before);
  });

  it('validates the event: a clear error naming the bad field; an unknown function', async () => {
    const bad = { ...s.event(0, {}), expected: 0 } as GradientEvent;
    await expect(handle('gradient', bad)).rejects.toThrow(/^invalid gradient event: expected: /);
    const noKey = { ...s.event(0, {}) } as Partial<GradientEvent>;
    delete noKey.batchLabelsKey;
    await expect(handle('gradient', noKey as GradientEvent)).rejects.toThrow(/invalid gradient event: batchLabelsKey: /);
    await expect(handle('nope' as 'gradient', s.event(0, {}))).rejects.toThrow('unknown function "nope": expected one of gradient, evaluate');
  });

  it('refuses an event that carries a password: secrets come from the function\'s environment', async () => {
    const withSecret = { ...s.event(0, {}), redis: { url: server.url, password: 'hunter2' } } as GradientEvent;
    await expect(handle('gradient', withSecret)).rejects.toThrow(/invalid gradient event: redis\.password: secrets do not travel in events: .*PEERLESS_REDIS_PASSWORD/);
  });

  it('an unreachable Redis is a transient failure; a bad hash is not', async () => {
    const err = await handle('gradient', s.event(0, { redis: { url: 'redis://127.0.0.1:1' } })).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/^gradient: cannot reach Redis at redis:\/\/127\.0\.0\.1:1/);
    expect(isTransient(err)).toBe(true);
    const bad = await handle('gradient', s.event(0, { layoutHash: 'x' })).catch((e: unknown) => e);
    expect(isTransient(bad)).toBe(false);
  });
});

describe('evaluate handler', () => {
  it('loss and correct count on a range of the stored MNIST test set', async () => {
    const a = await handle('evaluate', s.evalEvent(0, 500));
    const b = await handle('evaluate', s.evalEvent(500, 500));
    const ab = await handle('evaluate', s.evalEvent(0, 1000));
    expect(a.samples).toBe(500);
    expect(ab.correct).toBe(a.correct + b.correct);
    expect(ab.loss).toBeCloseTo((a.loss + b.loss) / 2, 4);
    // An untrained net: near chance, loss near ln(10).
    expect(ab.loss).toBeGreaterThan(1.5);
    expect(ab.loss).toBeLessThan(3.5);
  });

  it('a range past the end of the stored set is a clear error', async () => {
    await expect(handle('evaluate', s.evalEvent(9990, 20))).rejects.toThrow('evaluate: samples [9990, 10010) are outside the held-out set "data:test:y" (10000 samples)');
  });
});
