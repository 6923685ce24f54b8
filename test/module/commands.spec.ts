/**
 * Every command of the peerless module against a plain JavaScript reference, on a real
 * redis-server: exact bytes where float32 maths is exact to reproduce (Math.fround step by
 * step), a stated tolerance for Adam.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RedisServer } from '../../src/cluster/redis-server.ts';
import { adamStep, aggregateInto, checksum, sgdStep } from '../../src/tensor/reference.ts';
import type { AggregationRule } from '../../src/tensor/tensor-store.ts';
import { emptyExactSum, exactAdd, exactMeanOf } from '../../src/tensor/exact-sum.ts';
import { bytes, cmd, connect, errorOf, f32, floats, getBytes, getTensor, listenForAverages, randomTensor, rng, start, stopAll, waitFor, type Client } from './helpers.ts';

const f = Math.fround;
let server: RedisServer;
let client: Client;

beforeAll(async () => {
  ({ server, client } = await start());
});
afterAll(async () => {
  await stopAll(client, server);
});

describe('PL.SET, PL.GETRANGE, PL.SETRANGE, PL.ZEROS, PL.LEN', () => {
  it('stores the exact bytes; a plain GET reads them', async () => {
    // special values too: -0, subnormals, extremes
    const t = new Float32Array([...randomTensor(997, 1, 1e3), -0, 1e-45, -3.4028234663852886e38, 1.17549435e-38]);
    expect(await client.sendCommand(['PL.SET', 't', bytes(t)])).toBe('OK');
    expect((await getBytes(client, 't'))!.equals(bytes(t))).toBe(true);
    expect(await client.sendCommand(['PL.LEN', 't'])).toBe(1001);
  });

  it('reads ranges, including empty and final ones', async () => {
    const t = randomTensor(1000, 2);
    await cmd(client, 'PL.SET', 'r', bytes(t));
    for (const [o, c] of [[0, 1000], [0, 1], [999, 1], [123, 456], [1000, 0], [0, 0]]) {
      const got = await cmd<Buffer>(client, 'PL.GETRANGE', 'r', String(o), String(c));
      expect(got.equals(bytes(t.subarray(o, o + c)))).toBe(true);
    }
  });

  it('writes a slice in place', async () => {
    const t = randomTensor(100, 3), s = randomTensor(10, 4);
    await cmd(client, 'PL.SET', 'sr', bytes(t));
    await cmd(client, 'PL.SETRANGE', 'sr', '90', bytes(s));
    await cmd(client, 'PL.SETRANGE', 'sr', '0', bytes(s.subarray(0, 1)));
    const ref = t.slice();
    ref.set(s, 90);
    ref[0] = s[0];
    expect((await getBytes(client, 'sr'))!.equals(bytes(ref))).toBe(true);
  });

  it('copies a range between tensors inside the database, and within one (overlapping)', async () => {
    const a = randomTensor(100, 11), b = randomTensor(50, 12);
    await cmd(client, 'PL.SET', 'ca', bytes(a));
    await cmd(client, 'PL.SET', 'cb', bytes(b));
    expect(await client.sendCommand(['PL.COPYRANGE', 'cb', '10', 'ca', '90', '10'])).toBe('OK');
    const ref = b.slice();
    ref.set(a.subarray(90, 100), 10);
    expect((await getBytes(client, 'cb'))!.equals(bytes(ref))).toBe(true);
    await cmd(client, 'PL.COPYRANGE', 'ca', '5', 'ca', '0', '20');
    const self = a.slice();
    self.copyWithin(5, 0, 20);
    expect((await getBytes(client, 'ca'))!.equals(bytes(self))).toBe(true);
  });

  it('writes and copies slices too large for the caches exactly, at every offset modulo the store width', async () => {
    // Into a tensor of 16 MiB or more, the module copies with streaming stores after an
    // unaligned head: each offset below puts the destination at another alignment, and the
    // lengths end mid-line.
    const n = (1 << 22) + 64, big = randomTensor(n, 21);
    await cmd(client, 'PL.ZEROS', 'lg', String(n + 40));
    const ref = new Float32Array(n + 40);
    for (const offset of [0, 1, 2, 3, 5]) {
      const count = n - 17 * offset;
      await cmd(client, 'PL.SETRANGE', 'lg', String(offset), bytes(big.subarray(0, count)));
      ref.set(big.subarray(0, count), offset);
      expect((await getBytes(client, 'lg'))!.equals(bytes(ref))).toBe(true);
    }
    // Within one tensor, ranges apart (streamed) and overlapping (moved).
    const half = (n + 40) / 2;
    await cmd(client, 'PL.COPYRANGE', 'lg', String(half + 3), 'lg', '1', String(half - 3));
    ref.copyWithin(half + 3, 1, half - 2);
    expect((await getBytes(client, 'lg'))!.equals(bytes(ref))).toBe(true);
    await cmd(client, 'PL.COPYRANGE', 'lg', '7', 'lg', '0', String(n));
    ref.copyWithin(7, 0, n);
    expect((await getBytes(client, 'lg'))!.equals(bytes(ref))).toBe(true);
  });

  it('creates zeros, also over a longer existing tensor', async () => {
    await cmd(client, 'PL.SET', 'z', bytes(randomTensor(500, 5)));
    await cmd(client, 'PL.ZEROS', 'z', '300');
    expect((await getBytes(client, 'z'))!.equals(Buffer.alloc(1200))).toBe(true);
    await cmd(client, 'PL.ZEROS', 'z2', '7');
    expect((await getBytes(client, 'z2'))!.equals(Buffer.alloc(28))).toBe(true);
  });
});

describe('PL.SCALE and PL.CHECKSUM', () => {
  it('scales in float32 like the reference', async () => {
    const t = randomTensor(1000, 6, 10);
    await cmd(client, 'PL.SET', 's', bytes(t));
    await cmd(client, 'PL.SCALE', 's', '0.3');
    const ref = t.map((x) => f(x * f(0.3)));
    expect((await getBytes(client, 's'))!.equals(bytes(ref))).toBe(true);
  });

  it('matches the reference checksum and sees a single flipped bit', async () => {
    const t = randomTensor(4097, 7);
    await cmd(client, 'PL.SET', 'c', bytes(t));
    const sum = String(await client.sendCommand(['PL.CHECKSUM', 'c']));
    expect(sum).toMatch(/^[0-9a-f]{16}$/);
    expect(sum).toBe(checksum(t));
    const flipped = Buffer.from(bytes(t));
    flipped[5000] ^= 1;
    await cmd(client, 'PL.SET', 'c2', flipped);
    expect(String(await client.sendCommand(['PL.CHECKSUM', 'c2']))).not.toBe(sum);
  });
});

describe('PL.ACCUM', () => {
  /** The module's exact sum of `vectors`, as bytes (src/tensor/exact-sum.ts). */
  const exactSumBytes = (vectors: Float32Array[], total = vectors[0].length, offsets = vectors.map(() => 0)) => {
    const sum = emptyExactSum(total);
    vectors.forEach((v, k) => exactAdd(sum, total, v, offsets[k]));
    return Buffer.from(sum.buffer);
  };

  it('sums once per id, averages on the last arrival and publishes the avg key name', async () => {
    const { announced, close } = await listenForAverages(client);
    try {
      const g = [f32(1, 2, 3, -4), f32(10, 20, 30, 40), f32(100, 200, 300, 400)];
      const acc = (id: string, t: Float32Array) => client.sendCommand(['PL.ACCUM', 'sum', 'avg', id, '3', bytes(t)]);
      expect(await acc('a', g[0])).toEqual([1, 3, 0]);
      expect(await acc('a', g[0])).toEqual([1, 3, 0]); // a retry changes nothing
      expect(await acc('b', g[1])).toEqual([2, 3, 0]);
      expect(await acc('b', g[2])).toEqual([2, 3, 0]); // same id, other bytes: still ignored
      expect((await getBytes(client, 'sum'))!.equals(exactSumBytes([g[0], g[1]]))).toBe(true);
      expect(await client.exists('avg')).toBe(0);
      expect(await acc('c', g[2])).toEqual([3, 3, 1]);
      expect((await getBytes(client, 'sum'))!.equals(exactSumBytes(g))).toBe(true);
      expect(Array.from(await getTensor(client, 'avg'))).toEqual([111, 222, 333, 436].map((x) => f(x / 3)));
      expect(await acc('c', g[2])).toEqual([3, 3, 1]);
      expect(await errorOf(client, 'PL.ACCUM', 'sum', 'avg', 'd', '3', bytes(g[0]))).toMatch(/^ERR peerless: .*complete/);
      await waitFor(async () => announced.length > 0, 5000, 'the announcement');
      expect(announced).toEqual(['avg']);
    } finally {
      await close();
    }
  });

  it('sums exactly: any arrival order of the same gradients gives the same sum and mean bytes', async () => {
    // Gradient-like values: random signs, magnitudes from 1e-12 to 1e3, so float32 sums in
    // different orders would differ.
    const n = 4099, k = 7;
    const r = rng(77);
    const grads = Array.from({ length: k }, () => Float32Array.from({ length: n }, () => (r() < 0.5 ? -1 : 1) * 10 ** (r() * 15 - 12)));
    const expectedSum = exactSumBytes(grads), expectedAvg = bytes(exactMeanOf(grads));
    let float32Orders = 0;
    const seen = new Set<string>();
    for (let trial = 0; trial < 12; trial++) {
      const order = Array.from({ length: k }, (_, i) => i).sort(() => r() - 0.5);
      for (const j of order) await client.sendCommand(['PL.ACCUM', `ps${trial}`, `pavg${trial}`, `g${j}`, String(k), bytes(grads[j])]);
      expect((await getBytes(client, `ps${trial}`))!.equals(expectedSum)).toBe(true);
      expect((await getBytes(client, `pavg${trial}`))!.equals(expectedAvg)).toBe(true);
      // The float32 sum in this order, for contrast: orders do change it.
      const f32sum = new Float32Array(n);
      for (const j of order) for (let i = 0; i < n; i++) f32sum[i] = f(f32sum[i] + grads[j][i]);
      seen.add(bytes(f32sum).toString('base64'));
      float32Orders++;
    }
    expect(float32Orders).toBe(12);
    expect(seen.size).toBeGreaterThan(1);
  });

  it('is closer to the float64 mean than a float32 sum in arrival order, on gradient-like values', async () => {
    const n = 20_000, k = 30;
    const r = rng(5);
    const grads = Array.from({ length: k }, () => Float32Array.from({ length: n }, () => (r() < 0.5 ? -1 : 1) * 10 ** (r() * 12 - 9)));
    for (const [j, g] of grads.entries()) await client.sendCommand(['PL.ACCUM', 'acc', 'accavg', `g${j}`, String(k), bytes(g)]);
    const exact = await getTensor(client, 'accavg');
    let errExact = 0, errF32 = 0, worse = 0;
    for (let i = 0; i < n; i++) {
      let s64 = 0, s32 = 0;
      for (const g of grads) { s64 += g[i]; s32 = f(s32 + g[i]); }
      const truth = s64 / k;
      const e1 = Math.abs(exact[i] - truth), e2 = Math.abs(f(s32 / k) - truth);
      errExact += e1; errF32 += e2;
      if (e1 > e2) worse++;
    }
    expect(errExact).toBeLessThan(errF32 / 2);
    // Rounded once, it can lose to a lucky float32 sum only by its final rounding's tie.
    expect(worse).toBeLessThan(n / 100);
  });

  it('refuses a value too large to sum exactly, and counts nothing', async () => {
    await client.sendCommand(['PL.ACCUM', 'big', 'bigavg', 'a', '2', bytes(f32(1, 2))]);
    const before = await getBytes(client, 'big');
    expect(await errorOf(client, 'PL.ACCUM', 'big', 'bigavg', 'b', '2', bytes(f32(3, 2 ** 20)))).toMatch(/^ERR peerless: gradient has a value too large to sum exactly \(1\.04858e\+06 at element 1; the limit is 1\.04858e\+06 in magnitude\)$/);
    expect((await getBytes(client, 'big'))!.equals(before!)).toBe(true);
    expect(await client.sendCommand(['PL.ACCUM', 'big', 'bigavg', 'b', '2', bytes(f32(3, -(2 ** 20 - 1)))])).toEqual([2, 2, 1]);
    expect(Array.from(await getTensor(client, 'bigavg'))).toEqual([2, f((2 - (2 ** 20 - 1)) / 2)]);
  });

  it('accumulates slices with OFFSET/TOTAL into a sum of the full length', async () => {
    const a = f32(1, 2, 3), b = f32(4, 5), c = f32(0.5, 0.5, 0.5);
    expect(await client.sendCommand(['PL.ACCUM', 'ss', 'savg', 'a', '3', bytes(a), 'OFFSET', '0', 'TOTAL', '8'])).toEqual([1, 3, 0]);
    expect(await client.sendCommand(['PL.ACCUM', 'ss', 'savg', 'b', '3', bytes(b), 'total', '8', 'offset', '6'])).toEqual([2, 3, 0]);
    expect(await client.sendCommand(['PL.ACCUM', 'ss', 'savg', 'c', '3', bytes(c), 'OFFSET', '2', 'TOTAL', '8'])).toEqual([3, 3, 1]);
    const sum = [1, 2, 3.5, 0.5, 0.5, 0, 4, 5];
    expect((await getBytes(client, 'ss'))!.equals(exactSumBytes([a, b, c], 8, [0, 6, 2]))).toBe(true);
    expect(Array.from(await getTensor(client, 'savg'))).toEqual(sum.map((x) => f(x / 3)));
  });

  it('starts a fresh sum when the id set is gone (next round), reusing the keys', async () => {
    await client.sendCommand(['PL.ACCUM', 'fr', 'favg', 'x', '1', bytes(f32(1, 1))]);
    await client.del('fr:ids');
    expect(await client.sendCommand(['PL.ACCUM', 'fr', 'favg', 'x', '2', bytes(f32(2, 3))])).toEqual([1, 2, 0]);
    expect((await getBytes(client, 'fr'))!.equals(exactSumBytes([f32(2, 3)]))).toBe(true);
    // a ranged first arrival zeroes the rest of an old, longer sum
    await client.del('fr:ids');
    await client.sendCommand(['PL.ACCUM', 'fr', 'favg', 'y', '1', bytes(f32(7)), 'OFFSET', '1', 'TOTAL', '3']);
    expect(Array.from(await getTensor(client, 'favg'))).toEqual([0, 7, 0]);
  });

  it('with ROUND, reuses its keys round after round and refuses a late round\'s contributions', async () => {
    const acc = (round: number, id: string, t: Float32Array) => client.sendCommand(['PL.ACCUM', 'rr', 'rravg', id, '2', bytes(t), 'ROUND', String(round)]);
    expect(await acc(4, 'a', f32(1, 2))).toEqual([1, 2, 0]);
    expect(await acc(4, 'b', f32(3, 4))).toEqual([2, 2, 1]);
    expect(await client.get('rravg:round')).toBe('4');
    expect(Array.from(await getTensor(client, 'rravg'))).toEqual([2, 3]);
    // Round 6 starts afresh in the same keys; round 5 is then too late, and changes nothing.
    expect(await acc(6, 'a', f32(10, 20))).toEqual([1, 2, 0]);
    const before = await getBytes(client, 'rr');
    expect(await errorOf(client, 'PL.ACCUM', 'rr', 'rravg', 'b', '2', bytes(f32(9, 9)), 'ROUND', '5')).toBe('ERR peerless: contribution "b" is for round 5, but "rr" is summing round 6: too late, refused');
    expect((await getBytes(client, 'rr'))!.equals(before!)).toBe(true);
    expect(await client.get('rravg:round')).toBe('4');
    // Closing checks the round, then marks the average's round.
    expect(await errorOf(client, 'PL.CLOSE', 'rr', 'rravg', 'ROUND', '7')).toBe('ERR peerless: no contribution to "rr" arrived for round 7: nothing to average');
    expect(await errorOf(client, 'PL.CLOSE', 'rr', 'rravg', 'ROUND', '5')).toBe('ERR peerless: "rr" is summing round 6 already: round 5 is over');
    expect(await client.sendCommand(['PL.CLOSE', 'rr', 'rravg', 'ROUND', '6'])).toEqual([1, 2, 1]);
    expect(await client.get('rravg:round')).toBe('6');
    expect(Array.from(await getTensor(client, 'rravg'))).toEqual([10, 20]);
  });

  it('works with binary key names and ids', async () => {
    const sum = Buffer.from([0, 1, 2, 0xff, 0x0a]), avg = Buffer.from('avg\r\nx'), id = Buffer.from([0, 0, 0]);
    expect(await client.sendCommand(['PL.ACCUM', sum, avg, id, '1', bytes(f32(4, 6))])).toEqual([1, 1, 1]);
    expect(Array.from(floats(await cmd<Buffer>(client, 'GET', avg)))).toEqual([4, 6]);
    expect(await client.sendCommand(['HEXISTS', Buffer.concat([sum, Buffer.from(':ids')]), id])).toBe(1);
  });
});

describe('PL.SGD', () => {
  it.each([
    { momentum: 0.9 },
    { momentum: 0.9, nesterov: true },
    { momentum: 0.5, dampening: 0.1, weightDecay: 0.01 },
    { momentum: 0.9, nesterov: true, weightDecay: 5e-4 },
    { momentum: 0 },
  ])('matches the float32 reference bit for bit over 3 steps: %o', async (o) => {
    const n = 2053;
    const p = randomTensor(n, 20), v = new Float32Array(n);
    await client.del(['sp', 'sv']);
    await cmd(client, 'PL.SET', 'sp', bytes(p));
    for (let step = 0; step < 3; step++) {
      const g = randomTensor(n, 30 + step);
      await cmd(client, 'PL.SET', 'sg', bytes(g));
      const args = ['PL.SGD', 'sp', 'sg', 'sv', '0.05', String(o.momentum)];
      if (o.dampening) args.push('DAMPENING', String(o.dampening));
      if (o.weightDecay) args.push('WD', String(o.weightDecay));
      if (o.nesterov) args.push('NESTEROV');
      expect(await client.sendCommand(args)).toBe('OK');
      sgdStep(p, g, v, step === 0, { lr: 0.05, ...o });
    }
    expect((await getBytes(client, 'sp'))!.equals(bytes(p))).toBe(true);
    expect((await getBytes(client, 'sv'))!.equals(bytes(v))).toBe(true);
  });
});

describe('PL.ADAM', () => {
  it.each([
    { lr: 1e-3 },
    { lr: 1e-2, beta1: 0.8, beta2: 0.99, eps: 1e-6 },
    { lr: 1e-3, weightDecay: 0.01 },
    { lr: 1e-3, weightDecay: 0.01, decoupled: true },
  ])('matches the reference within 1e-6 (norm-wise relative) over 4 steps: %o', async (o) => {
    const n = 2000;
    const p = randomTensor(n, 40), m = new Float32Array(n), v = new Float32Array(n);
    await client.del(['ap', 'am', 'av', 'astep']);
    await cmd(client, 'PL.SET', 'ap', bytes(p));
    for (let step = 1; step <= 4; step++) {
      const g = randomTensor(n, 50 + step, 0.1);
      await cmd(client, 'PL.SET', 'ag', bytes(g));
      const args = ['PL.ADAM', 'ap', 'ag', 'am', 'av', 'astep', String(o.lr)];
      if (o.beta1 !== undefined) args.push('BETA1', String(o.beta1));
      if (o.beta2 !== undefined) args.push('BETA2', String(o.beta2));
      if (o.eps !== undefined) args.push('EPS', String(o.eps));
      if (o.weightDecay) args.push('WD', String(o.weightDecay));
      if (o.decoupled) args.push('DECOUPLED');
      expect(await client.sendCommand(args)).toBe(step);
      adamStep(p, g, m, v, step, o);
    }
    expect(await client.get('astep')).toBe('4');
    // The module computes in float32 with float hyper-parameters, the reference rounds double
    // products: they differ by about an ulp of the operands, which is a large element-wise
    // relative error only where m, v or p cancel to near zero. So: |got - ref| <= 1e-6 max|ref|.
    const close = (got: Float32Array, ref: Float32Array) => {
      const scale = ref.reduce((a, x) => Math.max(a, Math.abs(x)), 0);
      let worst = 0;
      for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs(got[i] - ref[i]));
      expect(worst).toBeLessThanOrEqual(1e-6 * scale);
    };
    close(await getTensor(client, 'ap'), p);
    close(await getTensor(client, 'am'), m);
    close(await getTensor(client, 'av'), v);
  });

  it('continues from an existing step count', async () => {
    await client.set('astep2', '41');
    await cmd(client, 'PL.SET', 'ap2', bytes(f32(1, 2)));
    await cmd(client, 'PL.SET', 'ag2', bytes(f32(0.1, -0.1)));
    expect(await client.sendCommand(['PL.ADAM', 'ap2', 'ag2', 'am2', 'av2', 'astep2', '0.1'])).toBe(42);
  });
});

describe('PL.SGD and PL.ADAM in pieces (RANGE)', () => {
  /** Pieces of [0, n) of uneven sizes, in a shuffled order. */
  const pieces = (n: number) => [[700, 653], [0, 300], [1353, 700], [300, 400]].filter(([o]) => o < n);

  it.each([
    { momentum: 0.9 },
    { momentum: 0.5, dampening: 0.1, weightDecay: 0.01 },
    { momentum: 0.9, nesterov: true, weightDecay: 5e-4 },
  ])('SGD pieces give the whole step\'s bytes, the first step included: %o', async (o) => {
    const n = 2053;
    const opts = [...(o.dampening ? ['DAMPENING', String(o.dampening)] : []), ...(o.weightDecay ? ['WD', String(o.weightDecay)] : []), ...(o.nesterov ? ['NESTEROV'] : [])];
    await client.del(['wp', 'wv', 'pp', 'pv']);
    await cmd(client, 'PL.SET', 'wp', bytes(randomTensor(n, 20)));
    await cmd(client, 'PL.SET', 'pp', bytes(randomTensor(n, 20)));
    await cmd(client, 'PL.ZEROS', 'pv', String(n)); // pieces need the velocity at full length
    for (let step = 0; step < 3; step++) {
      await cmd(client, 'PL.SET', 'sg', bytes(randomTensor(n, 30 + step)));
      await cmd(client, 'PL.SGD', 'wp', 'sg', 'wv', '0.05', String(o.momentum), ...opts);
      for (const [off, count] of pieces(n)) {
        expect(await cmd(client, 'PL.SGD', 'pp', 'sg', 'pv', '0.05', String(o.momentum), ...opts, 'RANGE', String(off), String(count), ...(step === 0 ? ['FIRST'] : []))).toBe('OK');
      }
    }
    expect((await getBytes(client, 'pp'))!.equals((await getBytes(client, 'wp'))!)).toBe(true);
    expect((await getBytes(client, 'pv'))!.equals((await getBytes(client, 'wv'))!)).toBe(true);
  });

  it('Adam pieces with STEP give the whole step\'s bytes and leave the step key alone', async () => {
    const n = 2053;
    await client.del(['wap', 'wam', 'wav', 'wastep', 'pap', 'pam', 'pav', 'pastep']);
    await cmd(client, 'PL.SET', 'wap', bytes(randomTensor(n, 40)));
    await cmd(client, 'PL.SET', 'pap', bytes(randomTensor(n, 40)));
    await cmd(client, 'PL.ZEROS', 'pam', String(n));
    await cmd(client, 'PL.ZEROS', 'pav', String(n));
    for (let step = 1; step <= 3; step++) {
      await cmd(client, 'PL.SET', 'ag', bytes(randomTensor(n, 50 + step, 0.1)));
      await cmd(client, 'PL.ADAM', 'wap', 'ag', 'wam', 'wav', 'wastep', '0.001', 'WD', '0.01', 'DECOUPLED');
      for (const [off, count] of pieces(n)) {
        expect(await cmd(client, 'PL.ADAM', 'pap', 'ag', 'pam', 'pav', 'pastep', '0.001', 'WD', '0.01', 'DECOUPLED', 'RANGE', String(off), String(count), 'STEP', String(step))).toBe(step);
      }
    }
    for (const [whole, inPieces] of [['wap', 'pap'], ['wam', 'pam'], ['wav', 'pav']]) {
      expect((await getBytes(client, inPieces))!.equals((await getBytes(client, whole))!)).toBe(true);
    }
    expect(await client.get('pastep')).toBeNull();
  });

  it('refuses a piece outside the parameters, missing state, FIRST or STEP out of place, and changes nothing', async () => {
    await cmd(client, 'PL.SET', 'rp', bytes(randomTensor(16, 1)));
    await cmd(client, 'PL.SET', 'rg', bytes(randomTensor(16, 2)));
    await client.del(['rv', 'rm', 'rv2']);
    const before = await getBytes(client, 'rp');
    expect(await errorOf(client, 'PL.SGD', 'rp', 'rg', 'rv', '0.1', '0.9', 'RANGE', '0', '4')).toBe('ERR peerless: velocity "rv" does not exist');
    await cmd(client, 'PL.ZEROS', 'rv', '16');
    expect(await errorOf(client, 'PL.SGD', 'rp', 'rg', 'rv', '0.1', '0.9', 'RANGE', '10', '7')).toBe('ERR peerless: RANGE [10, 17) is outside the parameters "rp" of 16 elements');
    expect(await errorOf(client, 'PL.SGD', 'rp', 'rg', 'rv', '0.1', '0.9', 'RANGE', '0', '0')).toMatch(/RANGE count must be between 1 and/);
    expect(await errorOf(client, 'PL.SGD', 'rp', 'rg', 'rv', '0.1', '0.9', 'FIRST')).toBe('ERR peerless: FIRST goes with RANGE (without it, a missing velocity says so)');
    expect(await errorOf(client, 'PL.ADAM', 'rp', 'rg', 'rm', 'rv2', 'rs', '0.1', 'RANGE', '0', '4')).toBe('ERR peerless: RANGE and STEP go together: a piece of a step says which step it is');
    expect(await errorOf(client, 'PL.ADAM', 'rp', 'rg', 'rm', 'rv2', 'rs', '0.1', 'STEP', '3')).toBe('ERR peerless: RANGE and STEP go together: a piece of a step says which step it is');
    expect(await errorOf(client, 'PL.ADAM', 'rp', 'rg', 'rm', 'rv2', 'rs', '0.1', 'RANGE', '0', '4', 'STEP', '0')).toMatch(/STEP must be between 1 and/);
    expect(await errorOf(client, 'PL.ADAM', 'rp', 'rg', 'rm', 'rv2', 'rs', '0.1', 'RANGE', '0', '4', 'STEP', '1')).toBe('ERR peerless: first moment "rm" does not exist');
    expect((await getBytes(client, 'rp'))!.equals(before!)).toBe(true);
    expect(await client.exists(['rm', 'rv2', 'rs'])).toBe(0);
  });
});

describe('PL.CHECKSUM in pieces', () => {
  // The checksum hashes blocks of 4096 words: pieces chain when cut at multiples of that.
  const BLOCK = 4096;

  it('RANGE pieces chained with FROM give the whole tensor\'s checksum (and the reference\'s)', async () => {
    const n = 5 * BLOCK + 1001;
    const t = randomTensor(n, 77);
    await cmd(client, 'PL.SET', 'ck:t', bytes(t));
    const whole = String(await client.sendCommand(['PL.CHECKSUM', 'ck:t']));
    expect(whole).toBe(checksum(t));
    for (const cuts of [[0, BLOCK, 3 * BLOCK, n], [0, 5 * BLOCK, n], [0, n]]) {
      let state: string | undefined;
      for (let i = 0; i + 1 < cuts.length; i++) {
        const [from, to] = [cuts[i]!, cuts[i + 1]!];
        state = String(await client.sendCommand(['PL.CHECKSUM', 'ck:t', 'RANGE', String(from), String(to - from), ...(state ? ['FROM', state] : [])]));
      }
      expect(state).toBe(whole);
    }
    // Short tensors (one partial block, fewer words than lanes) match the reference too.
    for (const len of [1, 7, 8, 9, BLOCK, BLOCK + 3]) {
      const s = randomTensor(len, 100 + len);
      await cmd(client, 'PL.SET', 'ck:s', bytes(s));
      expect(String(await client.sendCommand(['PL.CHECKSUM', 'ck:s']))).toBe(checksum(s));
    }
  });

  it('refuses a piece continued from a state at an offset inside a block', async () => {
    await cmd(client, 'PL.SET', 'ck:inside', bytes(randomTensor(1000, 78)));
    const state = String(await client.sendCommand(['PL.CHECKSUM', 'ck:inside', 'RANGE', '0', '500']));
    await expect(client.sendCommand(['PL.CHECKSUM', 'ck:inside', 'RANGE', '500', '100', 'FROM', state]))
      .rejects.toThrow('a piece continued with FROM starts at a multiple of 4096 elements, not at 500');
  });
});

describe('PL.AGGREGATE', () => {
  const n = 1537;
  const inputs = [0, 1, 2, 3, 4, 5, 6].map((k) => randomTensor(n, 60 + k));
  // an outlier for KRUM to reject
  inputs[6] = inputs[6].map((x) => x * 100);
  const names = inputs.map((_, k) => `peer:${String.fromCharCode(103 - k)}`); // peer:g .. peer:a

  beforeAll(async () => {
    for (const [k, t] of inputs.entries()) await cmd(client, 'PL.SET', names[k], bytes(t));
  });

  /** The reference on the inputs in canonical (byte-wise name) order. */
  function reference(keys: number[], rule: AggregationRule): Float32Array {
    const order = [...keys].sort((a, b) => Buffer.compare(Buffer.from(names[a]), Buffer.from(names[b])));
    const out = new Float32Array(n);
    aggregateInto(out, order.map((k) => inputs[k]), rule);
    return out;
  }
  const ruleArgs = (r: AggregationRule): string[] =>
    r.rule === 'mean' ? ['MEAN'] : r.rule === 'median' ? ['MEDIAN'] : r.rule === 'trimmed' ? ['TRIMMED', String(r.trim)] : ['KRUM', String(r.byzantine), String(r.select)];

  it.each<[AggregationRule, number[]]>([
    [{ rule: 'mean' }, [0, 1, 2, 3, 4, 5, 6]],
    [{ rule: 'mean' }, [3]],
    [{ rule: 'median' }, [0, 1, 2, 3, 4]],
    [{ rule: 'median' }, [0, 1, 2, 3]],
    [{ rule: 'trimmed', trim: 1 }, [0, 1, 2, 3, 4, 5]],
    [{ rule: 'trimmed', trim: 2 }, [0, 1, 2, 3, 4, 5, 6]],
    [{ rule: 'krum', byzantine: 1, select: 3 }, [0, 1, 2, 3, 4, 5, 6]],
    [{ rule: 'krum', byzantine: 2, select: 1 }, [0, 1, 2, 3, 4, 5, 6]],
  ])('%o over %j equals the reference, in any argument order', async (rule, keys) => {
    const ref = reference(keys, rule);
    const orders = [keys, [...keys].reverse(), [...keys].sort((a, b) => ((a * 7 + 3) % 5) - ((b * 7 + 3) % 5))];
    const sums = new Set<string>();
    for (const order of orders) {
      const args = ['PL.AGGREGATE', 'agg', ...ruleArgs(rule), String(order.length), ...order.map((k) => names[k])];
      expect(await client.sendCommand(args)).toBe('OK');
      expect((await getBytes(client, 'agg'))!.equals(bytes(ref))).toBe(true);
      sums.add(String(await client.sendCommand(['PL.CHECKSUM', 'agg'])));
    }
    expect(sums.size).toBe(1);
  });

  it('MEAN of 1 to 20 inputs gives the reference\'s bytes (one pass up to 8 inputs, groups of 8 beyond; powers of two multiplied)', async () => {
    for (let k = 1; k <= 20; k++) {
      const len = 2048 + 77 * k; // more than one block of the grouped loop
      const ts = Array.from({ length: k }, (_, j) => randomTensor(len, 500 + 31 * k + j).map((x, i) => (i % 3 === 0 ? x * 1e30 : i % 3 === 1 ? x * 1e-30 : x)));
      const keys = ts.map((_, j) => `mk:${k}:${String(j).padStart(2, '0')}`);
      for (const [j, t] of ts.entries()) await cmd(client, 'PL.SET', keys[j], bytes(t));
      const ref = new Float32Array(len);
      aggregateInto(ref, ts, { rule: 'mean' });
      await client.sendCommand(['PL.AGGREGATE', `mk:${k}:out`, 'MEAN', String(k), ...keys]);
      expect((await getBytes(client, `mk:${k}:out`))!.equals(bytes(ref)), `${k} inputs`).toBe(true);
      // Into its last input: each element is written after every input's element was read.
      await client.sendCommand(['PL.AGGREGATE', keys[k - 1], 'MEAN', String(k), ...keys]);
      expect((await getBytes(client, keys[k - 1]))!.equals(bytes(ref)), `${k} inputs, into the last`).toBe(true);
    }
  });

  it('MEAN sums in double in name order: closer to the float64 mean than float32, any magnitude', async () => {
    const big = [f32(3e38, 1e-30, 1 + 2 ** -23), f32(3e38, -1e-30, 2 ** -24), f32(-3e38, 5, 2 ** -24)];
    for (const [k, t] of big.entries()) await cmd(client, 'PL.SET', `big:${k}`, bytes(t));
    expect(await client.sendCommand(['PL.AGGREGATE', 'bigmean', 'MEAN', '3', 'big:2', 'big:0', 'big:1'])).toBe('OK');
    // float32 sums would overflow (3e38 + 3e38) and lose the 2^-24s; double keeps both.
    expect(Array.from(await getTensor(client, 'bigmean'))).toEqual([f(3e38 / 3), f(5 / 3), f((1 + 2 ** -23 + 2 ** -23) / 3)]);
  });

  it.each<[AggregationRule]>([[{ rule: 'mean' }], [{ rule: 'median' }], [{ rule: 'trimmed', trim: 1 }]])(
    '%o in RANGE pieces gives the bytes of the whole, and touches nothing outside its range', async (rule) => {
      const keys = [0, 1, 2, 3, 4, 5].map((k) => names[k]);
      await client.sendCommand(['PL.AGGREGATE', 'whole', ...ruleArgs(rule), '6', ...keys]);
      await cmd(client, 'PL.ZEROS', 'pieces', String(n));
      const cuts = [0, 500, 501, 1200, n];
      for (let i = 0; i + 1 < cuts.length; i++) {
        const [from, to] = [cuts[i]!, cuts[i + 1]!];
        expect(await client.sendCommand(['PL.AGGREGATE', 'pieces', 'RANGE', String(from), String(to - from), ...ruleArgs(rule), '6', ...keys])).toBe('OK');
        // Past this range, still zeros.
        if (to < n) expect(Array.from((await getTensor(client, 'pieces')).subarray(to)).every((x) => x === 0)).toBe(true);
      }
      expect((await getBytes(client, 'pieces'))!.equals((await getBytes(client, 'whole'))!)).toBe(true);
    });

  it('KRUM leaves the outlier out', async () => {
    await client.sendCommand(['PL.AGGREGATE', 'k', 'KRUM', '1', '6', '7', ...names]);
    const mean6 = reference([0, 1, 2, 3, 4, 5], { rule: 'mean' });
    expect((await getBytes(client, 'k'))!.equals(bytes(mean6))).toBe(true);
  });

  it('orders -0 before +0 like Float32Array sort (median of zeros)', async () => {
    await cmd(client, 'PL.SET', 'z:a', bytes(f32(-0, 0, -0)));
    await cmd(client, 'PL.SET', 'z:b', bytes(f32(0, -0, -0)));
    await cmd(client, 'PL.SET', 'z:c', bytes(f32(0, 0, 0)));
    await client.sendCommand(['PL.AGGREGATE', 'zm', 'MEDIAN', '3', 'z:a', 'z:b', 'z:c']);
    const ref = new Float32Array(3);
    aggregateInto(ref, [f32(-0, 0, -0), f32(0, -0, -0), f32(0, 0, 0)], { rule: 'median' });
    expect((await getBytes(client, 'zm'))!.equals(bytes(ref))).toBe(true);
  });

  it('may write into one of its inputs', async () => {
    const keys = ['al:1', 'al:2', 'al:3'];
    const ts = [randomTensor(999, 70), randomTensor(999, 71), randomTensor(999, 72)];
    for (const rule of [{ rule: 'mean' }, { rule: 'median' }] as AggregationRule[]) {
      for (const [k, t] of ts.entries()) await cmd(client, 'PL.SET', keys[k], bytes(t));
      const ref = new Float32Array(999);
      aggregateInto(ref, ts, rule);
      await client.sendCommand(['PL.AGGREGATE', 'al:2', ...ruleArgs(rule), '3', ...keys]);
      expect((await getBytes(client, 'al:2'))!.equals(bytes(ref))).toBe(true);
    }
  });

  it.each<[AggregationRule]>([[{ rule: 'mean' }], [{ rule: 'median' }], [{ rule: 'trimmed', trim: 1 }]])(
    '%o with OFFSETS: each input read at its own offset, into its range of dst, in the order given; the rest of dst untouched', async (rule) => {
      // A sharded exchange's owner: its own average read in place at the slice's offset, the
      // others' slices at 0 in keys of the slice's length, into the slice's place in dst.
      const [len, offset, count] = [1537, 600, 413];
      const own = randomTensor(len, 80);
      const parts = [randomTensor(count, 81), randomTensor(count, 82)];
      await cmd(client, 'PL.SET', 'of:avg', bytes(own));
      await cmd(client, 'PL.SET', 'of:part:a', bytes(parts[0]!));
      await cmd(client, 'PL.SET', 'of:part:c', bytes(parts[1]!));
      const before = randomTensor(len, 83);
      await cmd(client, 'PL.SET', 'of:dst', bytes(before));
      // The own input second: its place among the peers, which name order would not keep.
      const inputs = [parts[0]!, own.subarray(offset, offset + count), parts[1]!];
      const ref = new Float32Array(count);
      aggregateInto(ref, inputs, rule);
      expect(await client.sendCommand(['PL.AGGREGATE', 'of:dst', 'RANGE', String(offset), String(count), ...ruleArgs(rule), '3',
        'of:part:a', 'of:avg', 'of:part:c', 'OFFSETS', '0', String(offset), '0'])).toBe('OK');
      const got = await getTensor(client, 'of:dst');
      expect(bytes(got.subarray(offset, offset + count)).equals(bytes(ref))).toBe(true);
      expect(bytes(got.subarray(0, offset)).equals(bytes(before.subarray(0, offset)))).toBe(true);
      expect(bytes(got.subarray(offset + count)).equals(bytes(before.subarray(offset + count)))).toBe(true);
      // The inputs are read, never written.
      expect((await getBytes(client, 'of:avg'))!.equals(bytes(own))).toBe(true);
    });

  it('with OFFSETS, dst may be an input read at its own range, and is then aggregated in place', async () => {
    const [offset, count] = [100, 300];
    const a = randomTensor(1000, 90), b = randomTensor(count, 91);
    await cmd(client, 'PL.SET', 'oi:a', bytes(a));
    await cmd(client, 'PL.SET', 'oi:b', bytes(b));
    const ref = new Float32Array(count);
    aggregateInto(ref, [a.subarray(offset, offset + count), b], { rule: 'mean' });
    await client.sendCommand(['PL.AGGREGATE', 'oi:a', 'RANGE', String(offset), String(count), 'MEAN', '2', 'oi:a', 'oi:b', 'OFFSETS', String(offset), '0']);
    expect(bytes((await getTensor(client, 'oi:a')).subarray(offset, offset + count)).equals(bytes(ref))).toBe(true);
    await expect(client.sendCommand(['PL.AGGREGATE', 'oi:a', 'RANGE', String(offset), String(count), 'MEAN', '2', 'oi:a', 'oi:b', 'OFFSETS', '0', '0']))
      .rejects.toThrow('dst "oi:a" is also an input, read at 0: with OFFSETS, dst may be an input only at RANGE\'s offset 100');
  });

  it('tells cluster routing and ACLs where its keys are', async () => {
    const keys = await client.sendCommand(['COMMAND', 'GETKEYS', 'PL.AGGREGATE', 'dst', 'TRIMMED', '1', '3', 'x', 'y', 'z']);
    expect(keys).toEqual(['dst', 'x', 'y', 'z']);
    // The offsets after the keys are not keys.
    const offsets = await client.sendCommand(['COMMAND', 'GETKEYS', 'PL.AGGREGATE', 'dst', 'RANGE', '0', '4', 'MEAN', '2', 'x', 'y', 'OFFSETS', '0', '8']);
    expect(offsets).toEqual(['dst', 'x', 'y']);
    const accum = await client.sendCommand(['COMMAND', 'GETKEYS', 'PL.ACCUM', 's', 'a', 'id', '2', 'blob']);
    expect(accum).toEqual(['s', 'a']);
    const adam = await client.sendCommand(['COMMAND', 'GETKEYS', 'PL.ADAM', 'p', 'g', 'm', 'v', 'st', '0.1']);
    expect(adam).toEqual(['p', 'g', 'm', 'v', 'st']);
  });

  it('answers where the keys are for a command cut short after its rule, and the server stays up', async () => {
    // Asked before the command's own arity check: the key count is past the arguments. This
    // read past them once, and took the server down.
    for (const rule of ['MEAN', 'MEDIAN', 'TRIMMED', 'KRUM']) {
      for (const head of [['dst'], ['dst', 'RANGE', '0', '1']]) {
        for (const tail of [[], ['1'], ['1', '2']]) {
          const keys = await client.sendCommand(['COMMAND', 'GETKEYS', 'PL.AGGREGATE', ...head, rule, ...tail]);
          expect(keys, [...head, rule, ...tail].join(' ')).toContain('dst');
        }
      }
    }
    expect(await client.ping()).toBe('PONG');
  });
});

describe('flags', () => {
  it('marks writes and reads so replicas and ACLs treat them right', async () => {
    const info = (await client.sendCommand(['COMMAND', 'INFO', 'PL.SGD', 'PL.GETRANGE', 'PL.CHECKSUM'])) as unknown[][];
    const flags = info.map((c) => (c[2] as string[]).map(String));
    expect(flags[0]).toEqual(expect.arrayContaining(['write', 'denyoom']));
    expect(flags[1]).toContain('readonly');
    expect(flags[2]).toContain('readonly');
    // a second client sees the same server (sanity of the helper)
    const other = await connect(server);
    expect(await other.ping()).toBe('PONG');
    await other.close();
  });
});
