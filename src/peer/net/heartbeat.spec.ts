import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedisServer, type RedisServer } from '../../cluster/redis-server.ts';
import { closeRedis, connectRedis, type Redis } from '../../tensor/redis-client.ts';
import { heartbeatEvery, heartbeatStaleAfter, heartbeatTtl, startHeartbeat, watchHeartbeat } from './heartbeat.ts';
import { K } from './keys.ts';

// Heartbeats on a real redis-server: what a waiting peer reads as "dead". Each wait is for an
// observed value (a beat landing, the stillness growing), never for a moment on the clock.
let server: RedisServer;
let local: Redis;

beforeAll(async () => {
  server = await startRedisServer();
  local = await connectRedis({ url: server.url });
});
afterAll(async () => {
  await closeRedis(local);
  await server?.stop();
});

/** Polls `probe` until it returns a value `ok` accepts (bounded against a hang). */
async function until<T>(probe: () => Promise<T>, ok: (v: T) => boolean): Promise<T> {
  for (const end = Date.now() + 10_000; ; await new Promise((r) => setTimeout(r, 10))) {
    const v = await probe();
    if (ok(v)) return v;
    if (Date.now() > end) throw new Error(`no acceptable value within 10 s (last: ${String(v)})`);
  }
}

describe('heartbeats', () => {
  it('a beat stopped while it asked for its connections lets their refusals go, handled', async () => {
    // A peer closing stops its heartbeat, and its links refuse to connect from then on. An
    // unhandled refusal would end the process (a vitest worker here: the run fails).
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    const unhandled: unknown[] = [];
    const onUnhandled = (err: unknown) => unhandled.push(err);
    process.on('unhandledRejection', onUnhandled);
    try {
      const asked = new Promise<void>((done) => {
        const stop = startHeartbeat('p9', 4_000, async () => {
          await gate;
          done();
          return [Promise.reject(new Error('peer links closed: not connecting'))];
        });
        stop();
        release();
      });
      await asked;
      // Node reports an unhandled rejection once the microtasks run out: a few turns later.
      for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  it('beat eight times a deadline, at most once a second; a beat is stale after half a deadline, four beats at least', () => {
    expect(heartbeatEvery(60_000)).toBe(1_000);
    expect(heartbeatEvery(4_000)).toBe(500);
    expect(heartbeatStaleAfter(60_000)).toBe(30_000);
    expect(heartbeatStaleAfter(4_000)).toBe(2_000);
    expect(heartbeatStaleAfter(200)).toBe(4 * heartbeatEvery(200));
    expect(heartbeatTtl(60_000)).toBe(180_000);
    expect(heartbeatTtl(200)).toBe(600);
  });

  it('a beat that stands still lets the stillness grow; a new beat resets it; an expired key still counts as still', async () => {
    await local.set(K.heartbeat('p0'), '1');
    // No gap between two looks counts as a stall of this process here (that has its own test):
    // a loaded machine may leave 500 ms between them, which would start the count again.
    const stillFor = watchHeartbeat(local, 'p0', 600_000, 0);
    expect(await stillFor()).toBe(0);
    const grown = await until(stillFor, (ms) => ms >= 30);
    await local.set(K.heartbeat('p0'), '2');
    expect(await stillFor()).toBeLessThan(grown);
    const again = await until(stillFor, (ms) => ms >= 30);
    await local.del(K.heartbeat('p0'));
    expect(await stillFor()).toBeGreaterThanOrEqual(again);
  });

  it('time this peer was not looking (a stall of its own process) does not count: the count starts again', async () => {
    await local.set(K.heartbeat('p3'), '1');
    const stillFor = watchHeartbeat(local, 'p3', 40, 0);
    await stillFor();
    await new Promise((r) => setTimeout(r, 100)); // a gap of 100 ms between two looks, past 40
    expect(await stillFor()).toBe(0);
  });

  it('reads Redis at most once per readEveryMs, and answers the stillness as of its last read', async () => {
    await local.set(K.heartbeat('p4'), '1');
    const stillFor = watchHeartbeat(local, 'p4', 60_000, 60_000);
    const first = await stillFor();
    await local.set(K.heartbeat('p4'), '2');
    await new Promise((r) => setTimeout(r, 30));
    // No read since the first: neither reset by the new beat nor grown by an estimate.
    expect(await stillFor()).toBe(first);
  });

  it('a beating peer writes a new value each beat, with a time to live of three deadlines (ten beats at least)', async () => {
    const stop = startHeartbeat('p2', 400, async () => [Promise.resolve(local)]);
    const first = await until(() => local.get(K.heartbeat('p2')), (v) => v !== null);
    await until(() => local.get(K.heartbeat('p2')), (v) => v !== first);
    const ttl = await local.pTTL(K.heartbeat('p2'));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(heartbeatTtl(400));
    stop();
  });

  it('a stopped heartbeat writes no more', async () => {
    const stop = startHeartbeat('p5', 400, async () => [Promise.resolve(local)]);
    await until(() => local.get(K.heartbeat('p5')), (v) => v !== null);
    stop();
    await local.del(K.heartbeat('p5'));
    // Two beat periods later (a beat is every 50 ms at this deadline), nothing came back.
    await new Promise((r) => setTimeout(r, 2 * heartbeatEvery(400)));
    expect(await local.get(K.heartbeat('p5'))).toBeNull();
  });

  it('a key absent from the first look proves nothing: the stillness stays zero', async () => {
    const stillFor = watchHeartbeat(local, 'never-beat');
    await stillFor();
    await new Promise((r) => setTimeout(r, 50));
    expect(await stillFor()).toBe(0);
  });

  it('a member that cannot be reached costs only its own beat', async () => {
    const stop = startHeartbeat('p1', 400, async () => [Promise.reject(new Error('unreachable')), Promise.resolve(local)]);
    await until(() => local.get(K.heartbeat('p1')), (v) => v !== null);
    stop();
  });
});
