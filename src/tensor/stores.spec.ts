import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COPY_PIECE, copyRange } from './transfer.ts';
import { checksum } from './reference.ts';
import { startRedisServer, type RedisServer } from '../cluster/redis-server.ts';
import { AGGREGATE_PIECE, CHECKSUM_PIECE, InDbTensorStore } from './in-db.ts';
import { OutsideDbTensorStore } from './outside-db.ts';
import { closeRedis, connectRedis, type Redis } from './redis-client.ts';
import { exactMeanOf } from './exact-sum.ts';
import { AVERAGED_CHANNEL, type AggregationRule, type TensorStore } from './tensor-store.ts';
import { CHUNK_ELEMENTS } from './bytes.ts';

/**
 * The two TensorStore implementations against one real redis-server with the module:
 * every operation must give the same bytes in the database and outside it.
 */
let server: RedisServer;
let client: Redis;
let inDb: InDbTensorStore;
let outside: OutsideDbTensorStore;

function random(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s * 1664525 + 1013904223) >>> 0;
    out[i] = (s / 2 ** 32 - 0.5) * 2;
  }
  return out;
}

const bytesOf = (t: Float32Array) => Buffer.from(t.buffer, t.byteOffset, t.byteLength);

beforeAll(async () => {
  server = await startRedisServer();
  client = await connectRedis({ url: server.url });
  inDb = new InDbTensorStore(client);
  outside = new OutsideDbTensorStore(client);
});

afterAll(async () => {
  await closeRedis(client);
  await server.stop();
});

/** Runs `fn` on both stores under their own key prefixes; returns both results. */
async function both<T>(fn: (s: TensorStore, p: string) => Promise<T>): Promise<[T, T]> {
  return [await fn(inDb, 'in'), await fn(outside, 'out')];
}

describe('in-DB and outside-DB stores', () => {
  it('store and read tensors, whole and ranged, across chunk boundaries', async () => {
    const t = random(CHUNK_ELEMENTS * 2 + 17, 1);
    const [a, b] = await both(async (s, p) => {
      await s.set(`${p}:t`, t);
      return [await s.get(`${p}:t`), await s.getRange(`${p}:t`, CHUNK_ELEMENTS - 3, 10), await s.length(`${p}:t`)] as const;
    });
    expect(bytesOf(a[0]).equals(bytesOf(t))).toBe(true);
    expect(bytesOf(b[0]).equals(bytesOf(t))).toBe(true);
    expect(Array.from(a[1])).toEqual(Array.from(t.subarray(CHUNK_ELEMENTS - 3, CHUNK_ELEMENTS + 7)));
    expect(Array.from(b[1])).toEqual(Array.from(a[1]));
    expect(a[2]).toBe(t.length);
    expect(b[2]).toBe(t.length);
  });

  it('accumulate once per id, average on the last arrival, announce the key name', async () => {
    const grads = [random(1000, 2), random(1000, 3), random(1000, 4)];
    const sub = client.duplicate();
    await sub.connect();
    const announced: string[] = [];
    await sub.subscribe(AVERAGED_CHANNEL, (m) => announced.push(m));
    const [a, b] = await both(async (s, p) => {
      const r1 = await s.accumulate(`${p}:sum`, `${p}:avg`, 'b0', 3, grads[0]);
      const again = await s.accumulate(`${p}:sum`, `${p}:avg`, 'b0', 3, grads[0]);
      await s.accumulate(`${p}:sum`, `${p}:avg`, 'b1', 3, grads[1]);
      const last = await s.accumulate(`${p}:sum`, `${p}:avg`, 'b2', 3, grads[2]);
      const retry = await s.accumulate(`${p}:sum`, `${p}:avg`, 'b2', 3, grads[2]);
      return { r1, again, last, retry, avg: await s.get(`${p}:avg`) };
    });
    for (const r of [a, b]) {
      expect(r.r1).toEqual({ count: 1, expected: 3, done: false });
      expect(r.again).toEqual({ count: 1, expected: 3, done: false });
      expect(r.last).toEqual({ count: 3, expected: 3, done: true });
      expect(r.retry).toEqual({ count: 3, expected: 3, done: true });
    }
    // The exact, order-free mean (src/tensor/exact-sum.ts), the same in either store and in any order.
    const ref = exactMeanOf(grads);
    expect(bytesOf(ref).equals(bytesOf(exactMeanOf([grads[2], grads[0], grads[1]])))).toBe(true);
    expect(bytesOf(a.avg).equals(bytesOf(ref))).toBe(true);
    expect(bytesOf(b.avg).equals(bytesOf(ref))).toBe(true);
    // Both announcements, as they arrive (the test's own timeout bounds the wait).
    while (announced.length < 2) await new Promise((r) => setTimeout(r, 10));
    expect(announced).toEqual(['in:avg', 'out:avg']);
    await sub.close();
  });

  it('ranged accumulate builds a sum of the full length', async () => {
    const slice = random(10, 5);
    const [a, b] = await both(async (s, p) => {
      await s.accumulate(`${p}:rs`, `${p}:ravg`, 'x', 1, slice, { offset: 20, total: 40 });
      return s.get(`${p}:ravg`);
    });
    expect(a.length).toBe(40);
    expect(Array.from(a.subarray(20, 30))).toEqual(Array.from(slice));
    expect(Array.from(a.subarray(0, 20)).every((x) => x === 0)).toBe(true);
    expect(bytesOf(a).equals(bytesOf(b))).toBe(true);
  });

  it.each([
    { momentum: 0.9, nesterov: false, weightDecay: 0 },
    { momentum: 0.9, nesterov: true, weightDecay: 1e-4 },
    { momentum: 0, nesterov: false, weightDecay: 0 },
  ])('SGD gives the same bytes in and outside the database (%o)', async (opts) => {
    const p0 = random(5000, 6), g1 = random(5000, 7), g2 = random(5000, 8);
    const [a, b] = await both(async (s, p) => {
      await s.set(`${p}:p`, p0);
      await s.set(`${p}:g1`, g1);
      await s.set(`${p}:g2`, g2);
      await client.del(`${p}:v`);
      await s.sgd(`${p}:p`, `${p}:g1`, `${p}:v`, { lr: 0.05, ...opts });
      await s.sgd(`${p}:p`, `${p}:g2`, `${p}:v`, { lr: 0.05, ...opts });
      return [await s.get(`${p}:p`), await s.get(`${p}:v`)];
    });
    expect(bytesOf(a[0]).equals(bytesOf(b[0]))).toBe(true);
    expect(bytesOf(a[1]).equals(bytesOf(b[1]))).toBe(true);
  });

  it.each([{ decoupled: false, weightDecay: 0 }, { decoupled: true, weightDecay: 0.01 }])('Adam agrees in and outside the database (%o)', async (opts) => {
    const p0 = random(5000, 9), g = random(5000, 10);
    const [a, b] = await both(async (s, p) => {
      await s.set(`${p}:p`, p0);
      await s.set(`${p}:g`, g);
      await client.del([`${p}:m`, `${p}:v`, `${p}:step`]);
      const s1 = await s.adam(`${p}:p`, `${p}:g`, `${p}:m`, `${p}:v`, `${p}:step`, { lr: 1e-3, ...opts });
      const s2 = await s.adam(`${p}:p`, `${p}:g`, `${p}:m`, `${p}:v`, `${p}:step`, { lr: 1e-3, ...opts });
      return { steps: [s1, s2], p: await s.get(`${p}:p`) };
    });
    expect(a.steps).toEqual([1, 2]);
    expect(b.steps).toEqual([1, 2]);
    // Bias corrections are computed in double on both sides but the final division may round
    // differently: relative tolerance 1e-6.
    for (let i = 0; i < p0.length; i++) expect(Math.abs(a.p[i] - b.p[i])).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(b.p[i])));
  });

  it.each<AggregationRule>([
    { rule: 'mean' }, { rule: 'median' }, { rule: 'trimmed', trim: 1 }, { rule: 'krum', byzantine: 1, select: 2 },
  ])('aggregation %o is order-independent and the same in and outside the database', async (rule) => {
    const inputs = [0, 1, 2, 3, 4].map((k) => random(3000, 20 + k));
    for (const s of ['in', 'out']) for (const [k, t] of inputs.entries()) await inDb.set(`${s}:agg:${k}`, t);
    const keys = (p: string) => inputs.map((_, k) => `${p}:agg:${k}`);
    const [a, b] = await both(async (s, p) => {
      await s.aggregate(`${p}:dst1`, keys(p), rule);
      await s.aggregate(`${p}:dst2`, [...keys(p)].reverse(), rule);
      return [await s.get(`${p}:dst1`), await s.get(`${p}:dst2`)];
    });
    expect(bytesOf(a[0]).equals(bytesOf(a[1]))).toBe(true);
    expect(bytesOf(b[0]).equals(bytesOf(b[1]))).toBe(true);
    expect(bytesOf(a[0]).equals(bytesOf(b[0]))).toBe(true);
  });

  it.each<AggregationRule>([{ rule: 'mean' }, { rule: 'median' }, { rule: 'trimmed', trim: 1 }])(
    'aggregation %o of vectors longer than a piece runs in RANGE pieces and gives the bytes of one command', async (rule) => {
      const n = 2 * AGGREGATE_PIECE + 5;
      const inputs = [0, 1, 2].map((k) => random(n, 40 + k));
      for (const [k, t] of inputs.entries()) await inDb.set(`big:${k}`, t);
      const keys = inputs.map((_, k) => `big:${k}`);
      await client.del(['big:whole', 'big:pieces']);
      await inDb.aggregate('big:whole', keys, rule);
      await inDb.aggregate('big:pieces', keys, rule, n); // no dst yet: made at full length first
      expect((await client.sendCommand(['PL.CHECKSUM', 'big:pieces'])) as string).toBe(await client.sendCommand(['PL.CHECKSUM', 'big:whole']) as string);
      await inDb.aggregate('big:pieces', [...keys].reverse(), rule, n); // again, into the recycled dst
      expect((await client.sendCommand(['PL.CHECKSUM', 'big:pieces'])) as string).toBe(await client.sendCommand(['PL.CHECKSUM', 'big:whole']) as string);
      await client.del([...keys, 'big:whole', 'big:pieces']);
    });

  it('a copy inside Redis longer than a piece goes in pieces and copies every element', async () => {
    const n = COPY_PIECE + 7;
    const t = random(n, 51);
    await inDb.set('cp:src', t);
    await inDb.zeros('cp:dst', n + 10);
    await copyRange(client, 'cp:src', 0, n, 'cp:dst', 10);
    const got = await inDb.get('cp:dst');
    expect(Array.from(got.subarray(0, 10)).every((x) => x === 0)).toBe(true);
    expect(bytesOf(got.subarray(10)).equals(bytesOf(t))).toBe(true);
    await client.del(['cp:src', 'cp:dst']);
  });

  it('the checksum of a tensor longer than a piece, taken in chained pieces, is the reference\'s', async () => {
    const t = random(2 * CHECKSUM_PIECE + 3, 50);
    await inDb.set('ck:long', t);
    expect(await inDb.checksum('ck:long')).toBe(checksum(t));
    await client.del('ck:long');
  });

  it('checksums agree, and differ when one bit differs', async () => {
    const t = random(777, 30);
    await inDb.set('ck:a', t);
    const u = t.slice();
    u[500] = Math.fround(u[500] + 1e-6);
    await inDb.set('ck:b', u);
    expect(await inDb.checksum('ck:a')).toBe(await outside.checksum('ck:a'));
    expect(await inDb.checksum('ck:a')).not.toBe(await inDb.checksum('ck:b'));
  });

  it('bad input: a clear error and nothing changed, on both stores', async () => {
    const t = random(100, 40);
    const bad = t.slice();
    bad[3] = NaN;
    for (const s of [inDb, outside]) {
      await s.set('bad:t', t);
      await expect(s.set('bad:t', bad)).rejects.toThrow(/NaN|non-finite|finite/i);
      await expect(s.accumulate('bad:sum', 'bad:avg', 'x', 2, bad)).rejects.toThrow(/NaN|non-finite|finite/i);
      await expect(s.get('bad:missing')).rejects.toThrow(/missing|no such|not found|does not exist/i);
      expect(bytesOf(await s.get('bad:t')).equals(bytesOf(t))).toBe(true);
      expect(Number(await client.exists('bad:sum'))).toBe(0);
    }
    expect(await client.ping()).toBe('PONG');
  });
});
