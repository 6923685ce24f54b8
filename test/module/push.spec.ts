/**
 * PL.PUSH: a contribution sent in chunks counts once and whole, on a real redis-server.
 * Chunks of one attempt are added as they arrive and staged; an attempt that never completes
 * (its writer died, or another attempt of the same contribution completed first) is
 * withdrawn exactly, so the average's bytes are those of a clean run.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RedisServer } from '../../src/cluster/redis-server.ts';
import { exactMeanOf } from '../../src/tensor/exact-sum.ts';
import { accumulationStats } from '../../src/tensor/in-db.ts';
import type { Redis } from '../../src/tensor/redis-client.ts';
import { bytes, errorOf, f32, getBytes, randomTensor, rng, listenForAverages, snapshot, start, stopAll, waitFor, type Client } from './helpers.ts';

let server: RedisServer;
let client: Client;

beforeAll(async () => {
  ({ server, client } = await start());
});
afterAll(async () => {
  await stopAll(client, server);
});

const CHUNK = 5;

/** One PL.PUSH of chunk `index` of `g` (chunks of CHUNK elements). */
function push(sum: string, id: string, attempt: string, expected: number, g: Float32Array, index: number, extra: string[] = []) {
  const off = index * CHUNK;
  const part = g.subarray(off, Math.min(off + CHUNK, g.length));
  return client.sendCommand(['PL.PUSH', sum, `${sum}:avg`, id, attempt, String(expected), String(g.length), String(CHUNK), String(off), bytes(part), ...extra]);
}
const chunksOf = (g: Float32Array) => Math.ceil(g.length / CHUNK);
const meanBytes = (gs: Float32Array[]) => bytes(exactMeanOf(gs));

describe('PL.PUSH', () => {
  it('counts a contribution when all its chunks are in, in any order, and averages on the last one', async () => {
    const g = [randomTensor(23, 1, 0.1), randomTensor(23, 2, 0.1)];
    expect(await push('p1', 'a', 'x', 2, g[0], 3)).toEqual([0, 2, 0]);
    expect(await push('p1', 'a', 'x', 2, g[0], 0)).toEqual([0, 2, 0]);
    expect(await push('p1', 'b', 'y', 2, g[1], 4)).toEqual([0, 2, 0]);
    for (const i of [1, 2]) await push('p1', 'a', 'x', 2, g[0], i);
    expect(await push('p1', 'a', 'x', 2, g[0], 4)).toEqual([1, 2, 0]);
    for (const i of [0, 1, 2]) expect(await push('p1', 'b', 'y', 2, g[1], i)).toEqual([1, 2, 0]);
    expect(await client.exists('p1:avg')).toBe(0);
    expect(await push('p1', 'b', 'y', 2, g[1], 3)).toEqual([2, 2, 1]);
    expect((await getBytes(client, 'p1:avg'))!.equals(meanBytes(g))).toBe(true);
  });

  it('a writer killed after half its chunks, then retried in full: counted once, the average a clean run\'s', async () => {
    const g = [randomTensor(40, 3, 0.1), randomTensor(40, 4, 0.1)];
    for (let i = 0; i < 4; i++) await push('p2', 'a', 'first', 2, g[0], i); // dies after 4 of 8
    for (let i = 0; i < 8; i++) await push('p2', 'a', 'retry', 2, g[0], i);
    for (let i = 0; i < 8; i++) await push('p2', 'b', 'only', 2, g[1], i);
    expect((await getBytes(client, 'p2:avg'))!.equals(meanBytes(g))).toBe(true);
  });

  it('two racing attempts with different bytes: the first complete one counts, the other is dropped', async () => {
    const g = randomTensor(20, 5, 0.1), other = randomTensor(20, 6, 0.1), h = randomTensor(20, 7, 0.1);
    await push('p3', 'a', 'slow', 2, other, 0);
    await push('p3', 'a', 'slow', 2, other, 1);
    for (let i = 0; i < 4; i++) await push('p3', 'a', 'fast', 2, g, i);
    // The slow attempt goes on: acknowledged, not counted.
    expect(await push('p3', 'a', 'slow', 2, other, 2)).toEqual([1, 2, 0]);
    expect(await push('p3', 'a', 'slow', 2, other, 3)).toEqual([1, 2, 0]);
    for (let i = 0; i < 4; i++) await push('p3', 'b', 'only', 2, h, i);
    expect((await getBytes(client, 'p3:avg'))!.equals(meanBytes([g, h]))).toBe(true);
  });

  it('PL.STATS: each contribution counted once, and every repeat, withdrawal and late one caught', async () => {
    const stats = () => accumulationStats(client as unknown as Redis); // the helpers' client speaks RESP3
    const before = await stats();
    const g = [randomTensor(15, 11, 0.1), randomTensor(15, 12, 0.1), randomTensor(15, 13, 0.1)];
    for (let i = 0; i < 2; i++) await push('ps', 'a', 'first', 2, g[0], i); // dies after 2 of 3 chunks
    for (let i = 0; i < 3; i++) await push('ps', 'a', 'retry', 2, g[0], i); // a counts; 'first' is withdrawn
    await push('ps', 'a', 'again', 2, g[0], 0); // an attempt of a counted contribution: a repeat
    for (let i = 0; i < 3; i++) await push('ps', 'b', 'only', 2, g[1], i); // b counts; the sum completes
    for (let i = 0; i < 3; i++) await push('pt', 'c', 'only', 2, g[2], i); // c counts
    await client.sendCommand(['PL.CLOSE', 'pt', 'pt:avg']);
    await expect(push('pt', 'd', 'only', 2, g[1], 0)).rejects.toThrow(/too late/); // refused: late
    const after = await stats();
    const delta = Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - before[k as keyof typeof before]]));
    expect(delta).toEqual({ counted: 3, completed: 1, repeats: 1, withdrawn: 1, late: 1 });
    expect((await getBytes(client, 'ps:avg'))!.equals(meanBytes([g[0], g[1]]))).toBe(true);
  });

  it('acknowledges a chunk sent again with the same bytes, refuses other bytes, and changes nothing', async () => {
    const g = randomTensor(12, 8, 0.1);
    await push('p4', 'a', 'x', 1, g, 0);
    const before = await snapshot(client);
    expect(await push('p4', 'a', 'x', 1, g, 0)).toEqual([0, 1, 0]);
    const changed = g.slice();
    changed[1] += 1;
    expect(await errorOf(client, 'PL.PUSH', 'p4', 'p4:avg', 'a', 'x', '1', '12', String(CHUNK), '0', bytes(changed.subarray(0, CHUNK))))
      .toBe('ERR peerless: chunk at offset 0 of attempt "x" of "a" was sent again with other bytes: refused');
    expect(await snapshot(client)).toEqual(before);
  });

  it('refuses bad chunks with one line each and changes nothing', async () => {
    const g = randomTensor(12, 9, 0.1);
    await push('p5', 'a', 'x', 2, g, 0, ['ROUND', '3']);
    await client.hSet('p5:h', 'not', 'a tensor');
    const before = await snapshot(client);
    const p = (off: string, blob: Buffer, ...rest: string[]) => errorOf(client, 'PL.PUSH', 'p5', 'p5:avg', 'b', 'y', '2', '12', String(CHUNK), off, blob, ...rest);
    const five = bytes(g.subarray(0, 5));
    expect(await p('3', bytes(g.subarray(0, 5)))).toBe('ERR peerless: offset 3 is not at a chunk boundary (chunks of 5 elements)');
    expect(await p('12', five)).toBe('ERR peerless: offset must be between 0 and 11, got 12');
    expect(await p('10', five)).toBe('ERR peerless: chunk at offset 10 has 5 elements, expected 2');
    expect(await p('0', five.subarray(0, 7))).toMatch(/^ERR peerless: chunk has 7 bytes, not a non-empty multiple of 4/);
    expect(await p('0', bytes(Float32Array.of(1, NaN, 0, 0, 0)))).toBe('ERR peerless: chunk has a non-finite value (NaN) at element 1');
    expect(await p('5', bytes(Float32Array.of(1, 2 ** 21, 0, 0, 0)))).toMatch(/^ERR peerless: chunk has a value too large to sum exactly \(2\.09715e\+06 at element 6;/);
    expect(await p('0', five, 'ROUND', '2')).toBe('ERR peerless: chunk of "b" is for round 2, but "p5" is summing round 3: too late, refused');
    expect(await errorOf(client, 'PL.PUSH', 'p5', 'p5:avg', 'b', 'y', '3', '12', String(CHUNK), '0', five, 'ROUND', '3')).toBe('ERR peerless: expected 3 contributions, but "p5" was started with 2');
    expect(await errorOf(client, 'PL.PUSH', 'p5', 'p5:avg', 'b', 'y', '2', '13', String(CHUNK), '0', five, 'ROUND', '3')).toBe('ERR peerless: contribution "b" has 13 elements, but "p5" sums 12');
    // Refused in a later round too (its average's key is a hash): the old round's ids stay, as
    // a round starts afresh only with a command that counts.
    expect(await errorOf(client, 'PL.PUSH', 'p5', 'p5:h', 'b', 'y', '1', '5', String(CHUNK), '0', five, 'ROUND', '4')).toBe('ERR peerless: wrong type: avg "p5:h" holds a hash, not a float32 tensor');
    expect(await errorOf(client, 'PL.ACCUM', 'p5', 'p5:h', 'b', '1', bytes(f32(1, 2)), 'ROUND', '4')).toBe('ERR peerless: wrong type: avg "p5:h" holds a hash, not a float32 tensor');
    expect(await errorOf(client, 'PL.PUSH', 'p5', 'p5:avg', 'a', 'x', '2', '12', '4', '0', bytes(g.subarray(0, 4)), 'ROUND', '3')).toBe('ERR peerless: attempt "x" of "a" was started with chunks of 5 elements, not 4');
    expect(await errorOf(client, 'PL.PUSH', 'p5', 'p5', 'b', 'y', '2', '12', String(CHUNK), '0', five)).toMatch(/given twice/);
    expect(await errorOf(client, 'PL.PUSH', 'p5', 'p5:avg', '', 'y', '2', '12', String(CHUNK), '0', five)).toMatch(/must not be empty/);
    expect(await errorOf(client, 'PL.PUSH', 'p5', 'p5:avg', 'b', 'y', '2', '12', String(CHUNK), '0', five, 'WHAT', '1')).toMatch(/unexpected argument "WHAT"/);
    expect(await p('0', five, 'RESULT', '')).toBe('ERR peerless: RESULT holds 0 bytes, not 1 to 4096');
    expect(await p('0', five, 'RESULT', 'x'.repeat(4097))).toBe('ERR peerless: RESULT holds 4097 bytes, not 1 to 4096');
    expect(await snapshot(client)).toEqual(before);
  });

  it('keeps the RESULT of the attempt that counted with its id, for a caller whose answer was lost', async () => {
    const g = [randomTensor(12, 21, 0.1), randomTensor(12, 22, 0.1)];
    const result = (att: string) => ['ROUND', '7', 'RESULT', `{"loss":1,"attempt":"${att}"}`];
    // Attempt "x" of "a" dies after one chunk; "y" sends all three and counts.
    await push('p40', 'a', 'x', 2, g[0], 0, result('x'));
    for (const i of [2, 0]) await push('p40', 'a', 'y', 2, g[0], i, result('y'));
    expect(await client.hGet('p40:ids', 'a')).toBeNull();
    await push('p40', 'a', 'y', 2, g[0], 1, result('y'));
    expect(await client.hGet('p40:ids', 'a')).toBe('{"loss":1,"attempt":"y"}');
    // A later attempt of a counted contribution changes nothing; a push without RESULT keeps "1".
    for (let i = 0; i < 3; i++) await push('p40', 'a', 'z', 2, g[0], i, result('z'));
    expect(await client.hGet('p40:ids', 'a')).toBe('{"loss":1,"attempt":"y"}');
    for (let i = 0; i < 3; i++) await push('p40', 'b', 'w', 2, g[1], i, ['ROUND', '7']);
    expect(await client.hGet('p40:ids', 'b')).toBe('1');
    expect((await getBytes(client, 'p40:avg'))!.equals(meanBytes(g))).toBe(true);
  });

  it('PL.CLOSE withdraws attempts in progress, averages the whole ones, and refuses later chunks', async () => {
    const g = [randomTensor(10, 10, 0.1), randomTensor(10, 11, 0.1)];
    expect(await errorOf(client, 'PL.PUSH', 'p6', 'p6:avg', 'a', 'x', '3', '10', String(CHUNK), '0', bytes(g[0].subarray(0, 5)), 'ROUND', '1', 'SLOTS', '0')).toMatch(/SLOTS must be between 1 and 256/);
    await push('p6', 'a', 'x', 3, g[0], 0, ['ROUND', '1']);
    expect(await errorOf(client, 'PL.CLOSE', 'p6', 'p6:avg', 'ROUND', '1')).toBe('ERR peerless: no contribution to "p6" is complete: nothing to average');
    await push('p6', 'a', 'x', 3, g[0], 1, ['ROUND', '1']);
    await push('p6', 'b', 'y', 3, g[1], 0, ['ROUND', '1']); // half of b, never finished
    expect(await client.sendCommand(['PL.CLOSE', 'p6', 'p6:avg', 'ROUND', '1'])).toEqual([1, 3, 1]);
    expect((await getBytes(client, 'p6:avg'))!.equals(meanBytes([g[0]]))).toBe(true);
    expect(await errorOf(client, 'PL.PUSH', 'p6', 'p6:avg', 'b', 'y', '3', '10', String(CHUNK), '5', bytes(g[1].subarray(5)), 'ROUND', '1'))
      .toBe('ERR peerless: accumulation "p6" was closed at 1 contributions; contribution "b" came too late and is refused');
    expect(await push('p6', 'a', 'z', 3, g[0], 0, ['ROUND', '1'])).toEqual([1, 1, 1]); // counted: acknowledged
  });

  it('a retry takes the slot of its contribution\'s failed attempt when the pool is full', async () => {
    const g = [randomTensor(10, 13, 0.1), randomTensor(10, 14, 0.1)];
    const o = ['SLOTS', '1'];
    await push('p8', 'a', 'dead', 2, randomTensor(10, 15), 0, o);
    expect(await errorOf(client, 'PL.PUSH', 'p8', 'p8:avg', 'b', 'y', '2', '10', String(CHUNK), '0', bytes(g[1].subarray(0, 5)), ...o)).toMatch(/no free staging slot/);
    await push('p8', 'a', 'retry', 2, g[0], 0, o); // replaces "dead", withdrawing its chunk
    await push('p8', 'a', 'retry', 2, g[0], 1, o);
    await push('p8', 'b', 'y', 2, g[1], 0, o);
    await push('p8', 'b', 'y', 2, g[1], 1, o);
    expect((await getBytes(client, 'p8:avg'))!.equals(meanBytes(g))).toBe(true);
  });

  it('bounds attempts in progress, and reuses its slots round after round without new keys', async () => {
    const g = randomTensor(10, 12, 0.1);
    await push('p7', 'a', 'x1', 1, g, 0, ['ROUND', '0', 'SLOTS', '2']);
    await push('p7', 'b', 'x2', 1, g, 0, ['ROUND', '0', 'SLOTS', '2']);
    expect(await errorOf(client, 'PL.PUSH', 'p7', 'p7:avg', 'c', 'x3', '1', '10', String(CHUNK), '0', bytes(g.subarray(0, 5)), 'ROUND', '0', 'SLOTS', '2'))
      .toBe('ERR peerless: no free staging slot for contribution "c" (2 attempts in progress): retry later');
    expect(await push('p7', 'b', 'x2', 1, g, 1, ['ROUND', '0', 'SLOTS', '2'])).toEqual([1, 1, 1]);
    const keys = async () => (await client.keys('p7*')).sort();
    const after0 = await keys();
    for (let round = 1; round <= 5; round++) {
      await push('p7', 'a', 'x', 1, g, 0, ['ROUND', String(round), 'SLOTS', '2']);
      expect(await push('p7', 'a', 'x', 1, g, 1, ['ROUND', String(round), 'SLOTS', '2'])).toEqual([1, 1, 1]);
      expect((await getBytes(client, 'p7:avg'))!.equals(meanBytes([g]))).toBe(true);
    }
    expect(await keys()).toEqual(after0);
    expect(await client.exists('p7:slot:2')).toBe(0);
  });

  it('a sum reused by a later round holds only that round\'s values, block by block (nothing stale survives)', async () => {
    // 150,000 elements: three of the module's 65,536-element blocks, chunks that do not align with them.
    const n = 150_000, chunk = 40_000;
    const g = randomTensor(n, 16, 0.1);
    const pushAll = async (sum: string, round: number, v: Float32Array) => {
      for (let off = 0; off < n; off += chunk) {
        await client.sendCommand(['PL.PUSH', sum, `${sum}:avg`, 'a', 'x', '1', String(n), String(chunk), String(off), bytes(v.subarray(off, off + chunk)), 'ROUND', String(round)]);
      }
    };
    await pushAll('p9', 0, randomTensor(n, 17, 0.1));
    await pushAll('p9', 1, g);
    expect((await getBytes(client, 'p9:avg'))!.equals(meanBytes([g]))).toBe(true);
    // Round 2 adds into one range only: the mean must be zero everywhere else.
    const part = randomTensor(10, 18, 0.1);
    expect(await client.sendCommand(['PL.ACCUM', 'p9', 'p9:avg', 'b', '1', bytes(part), 'OFFSET', '70000', 'TOTAL', String(n), 'ROUND', '2'])).toEqual([1, 1, 1]);
    const want = new Float32Array(n);
    want.set(part, 70_000);
    expect((await getBytes(client, 'p9:avg'))!.equals(bytes(want))).toBe(true);
  });

  it('refuses to stage into slot keys a user changed, and changes nothing', async () => {
    const g = randomTensor(10, 21, 0.1);
    await client.hSet('p10:slot:0', 'user', 'data'); // not a staging slot
    const before = await snapshot(client);
    expect(await errorOf(client, 'PL.PUSH', 'p10', 'p10:avg', 'a', 'x', '1', '10', String(CHUNK), '0', bytes(g.subarray(0, 5))))
      .toBe('ERR peerless: wrong type: "p10:slot:0" holds a hash, not a staging slot');
    expect(await snapshot(client)).toEqual(before);
    const h = randomTensor(15, 22, 0.1); // three chunks: the middle one is staged
    await push('p11', 'a', 'x', 1, h, 0);
    await client.set('p11:slot:0', 'short'); // the staged tensor replaced mid-attempt
    const mid = await snapshot(client);
    expect(await errorOf(client, 'PL.PUSH', 'p11', 'p11:avg', 'a', 'x', '1', '15', String(CHUNK), '5', bytes(h.subarray(5, 10))))
      .toBe('ERR peerless: staging slot 0 of "p11" no longer holds 15 elements: refused');
    expect(await snapshot(client)).toEqual(mid);
  });

  it('property: random interleavings, duplicates and abandoned attempts give byte-identical sums and means', async () => {
    const r = rng(2026);
    const n = 37, k = 5;
    const grads = Array.from({ length: k }, (_, j) => Float32Array.from(randomTensor(n, 100 + j), (x, i) => x * 10 ** ((i % 9) - 6)));
    const want = meanBytes(grads);
    const shuffle = <T>(xs: T[]) => { for (let i = xs.length - 1; i > 0; i--) { const j = Math.floor(r() * (i + 1)); [xs[i], xs[j]] = [xs[j], xs[i]]; } return xs; };
    let wantSum: Buffer | undefined;
    for (let trial = 0; trial < 25; trial++) {
      const sum = `prop${trial}`;
      const slots = String(1 + Math.floor(r() * 8));
      // Each contribution's sends: maybe an attempt with other bytes that dies partway, then
      // its retry's chunks in a random order, some sent twice. The contributions interleave.
      const queues = grads.map((g, j) => {
        const sends: [string, Float32Array, number][] = [];
        if (r() < 0.5) {
          const junk = randomTensor(n, 1000 + trial * k + j);
          for (const i of shuffle([...Array(chunksOf(g)).keys()]).slice(0, 1 + Math.floor(r() * (chunksOf(g) - 1)))) sends.push([`dead${trial}.${j}`, junk, i]);
        }
        for (const i of shuffle([...Array(chunksOf(g)).keys()])) {
          sends.push([`ok${trial}.${j}`, g, i]);
          if (r() < 0.2) sends.push([`ok${trial}.${j}`, g, i]);
        }
        return sends;
      });
      const pending = queues.map((q, j) => ({ q, j })).filter((x) => x.q.length);
      while (pending.length) {
        const pick = Math.floor(r() * pending.length);
        const { q, j } = pending[pick];
        const [att, g, i] = q[0];
        try {
          await push(sum, `c${j}`, att, k, g, i, ['SLOTS', slots]);
          q.shift();
        } catch (err) {
          // The pool is full of other contributions' attempts: the writer retries later.
          // (A pool holding only this contribution's attempts never refuses it: the retry
          // replaces the failed attempt.)
          expect((err as Error).message).toMatch(/no free staging slot/);
        }
        if (!q.length) pending.splice(pick, 1);
      }
      expect((await getBytes(client, `${sum}:avg`))!.equals(want)).toBe(true);
      const s = (await getBytes(client, sum))!;
      wantSum ??= s;
      expect(s.equals(wantSum)).toBe(true);
    }
  });
});

describe('a long average (more than 2^20 elements) is written in pieces', () => {
  const N = (1 << 21) + 12_345; // three pieces
  const grads = [randomTensor(N, 61, 0.1), randomTensor(N, 62, 0.1), randomTensor(N, 63, 0.1)];
  const accum = (sum: string, id: string, g: Float32Array, round: number) =>
    ['PL.ACCUM', sum, `${sum}:avg`, id, '3', bytes(g), 'ROUND', String(round)];

  it('between other clients\' commands, then announced with the exact mean\'s bytes', async () => {
    const { announced, close } = await listenForAverages(client);
    try {
      for (const [k, g] of grads.entries()) await client.sendCommand(accum('long', `b${k}`, g, 4));
      await waitFor(async () => (await client.get('long:avg:round')) === '4', 10_000, 'the average of round 4');
      expect((await getBytes(client, 'long:avg'))!.equals(meanBytes(grads))).toBe(true);
      await waitFor(async () => announced.length > 0, 5000, 'the announcement');
      expect(announced).toEqual(['long:avg']);
    } finally {
      await close();
    }
  });

  it('is finished first by the next command on its sum, which then sees the whole mean', async () => {
    // One MULTI runs back to back, with no timer tick between its commands: the next round's
    // first contribution finds the average still being written, and finishes it before it starts.
    const tx = client.multi();
    for (const [k, g] of grads.entries()) tx.addCommand(accum('next', `b${k}`, g, 7));
    tx.addCommand(['GET', 'next:avg:round']);
    tx.addCommand(accum('next', 'b0', grads[0], 8));
    tx.addCommand(['GET', 'next:avg:round']);
    const replies = await tx.exec();
    expect(replies.slice(2)).toEqual([[3, 3, 1], null, [1, 3, 0], '7']);
    expect((await getBytes(client, 'next:avg'))!.equals(meanBytes(grads))).toBe(true);
  });

  it('is finished in its own database, whatever a sum of the same name does in another', async () => {
    await client.sendCommand(['PL.ACCUM', 'same', 'same:avg', 'x', '1', bytes(f32(1, 2))]); // database 0, complete
    const db0 = await snapshot(client, 'same*');
    const other = client.duplicate();
    other.on('error', () => {});
    await other.connect();
    try {
      // Database 1's long average is in pieces when database 0's command on "same" runs.
      const tx = other.multi();
      tx.addCommand(['SELECT', '1']);
      for (const [k, g] of grads.entries()) tx.addCommand(accum('same', `b${k}`, g, 3));
      tx.addCommand(['SELECT', '0']);
      tx.addCommand(['PL.CLOSE', 'same', 'same:avg']); // complete already: changes nothing
      await tx.exec();
      await other.sendCommand(['SELECT', '1']);
      await waitFor(async () => (await other.get('same:avg:round')) === '3', 60_000, 'database 1\'s average');
      expect((await getBytes(other, 'same:avg'))!.equals(meanBytes(grads))).toBe(true);
      // A snapshot taken from database 1 finishes database 1's average, in database 1.
      for (const [k, g] of grads.entries()) await other.sendCommand(accum('same', `b${k}`, g, 4));
      await other.sendCommand(['SAVE']);
      expect(await other.get('same:avg:round')).toBe('4');
      expect((await getBytes(other, 'same:avg'))!.equals(meanBytes(grads))).toBe(true);
      await other.sendCommand(['FLUSHDB']);
    } finally {
      await other.close();
    }
    expect(await snapshot(client, 'same*')).toEqual(db0);
  });

  it('is dropped, unannounced, when its sum is deleted meanwhile; the server goes on', async () => {
    const tx = client.multi();
    for (const [k, g] of grads.entries()) tx.addCommand(accum('gone', `b${k}`, g, 1));
    tx.addCommand(['DEL', 'gone']);
    // Another long average, begun after: its announcement comes after the dropped job's first tick.
    for (const [k, g] of grads.entries()) tx.addCommand(accum('after', `b${k}`, g, 1));
    await tx.exec();
    await waitFor(async () => (await client.get('after:avg:round')) === '1', 10_000, 'the later average');
    expect(await client.get('gone:avg:round')).toBeNull();
    expect(await client.ping()).toBe('PONG');
  });
});

describe('the keys an accumulation keeps beside its sum', () => {
  it('are never its avg, nor is the sum the avg\'s round marker (each of these crashed the server)', async () => {
    // One contribution of two counted, and an attempt of another staged in slot 0.
    const two = bytes(f32(1, 2));
    await client.sendCommand(['PL.ACCUM', 'k1', 'k1:avg', 'idA', '2', two]);
    await client.sendCommand(['PL.PUSH', 'k1', 'k1:avg', 'idB', 'att1', '2', '2', '1', '0', bytes(f32(5))]);
    await client.sendCommand(['PL.ACCUM', 'k2', 'k2:avg', 'id1', '1', two, 'ROUND', '1']);
    const before = await snapshot(client, 'k[12]*'); // the long averages' keys above are large
    for (const args of [
      ['PL.CLOSE', 'k1', 'k1:slot:0:got'],
      ['PL.ACCUM', 'k1', 'k1:slot:0:got', 'idC', '2', two],
      ['PL.PUSH', 'k1', 'k1:slot:0:got', 'idC', 'a', '2', '2', '2', '0', bytes(f32(5, 6))],
      ['PL.ACCUM', 'k2', 'k2:round', 'id2', '1', two, 'ROUND', '2'],
    ]) {
      expect(await errorOf(client, ...args)).toMatch(/^ERR peerless: avg "k\d:(slot:0:got|round)" is one of the keys sum "k\d" keeps beside it: refused$/);
      expect(await client.ping()).toBe('PONG');
    }
    expect(await snapshot(client, 'k[12]*')).toEqual(before);
  });

  it('a slot record that does not cut the sum is a free slot: nothing is withdrawn past the sum', async () => {
    // Slot 0 records chunks of 2 of an 8-element sum; the sum is then made 2 elements long.
    await client.sendCommand(['PL.ACCUM', 'k3', 'k3:avg', 'idA', '3', bytes(f32(0, 1, 2, 3, 4, 5, 6, 7))]);
    await client.sendCommand(['PL.PUSH', 'k3', 'k3:avg', 'idB', 'att1', '3', '8', '2', '6', bytes(f32(5, 6))]);
    await client.sendCommand(['PL.ZEROS', 'k3', '8']);
    await client.sendCommand(['PL.ZEROS', 'k3:slot:0', '2']);
    expect(await client.sendCommand(['PL.CLOSE', 'k3', 'k3:avg'])).toEqual([1, 3, 1]);
    expect(await client.ping()).toBe('PONG');
    // A record written behind the module's back: 1,000 chunks of 10^6 elements, all arrived.
    await client.sendCommand(['PL.ACCUM', 'k4', 'k4:avg', 'idA', '3', bytes(f32(1, 2))]);
    await client.set('k4:slot:0', Buffer.alloc(8));
    const head = Buffer.alloc(24);
    [0x54534c50, 1000, 1000, 1_000_000, 1, 1].forEach((v, i) => head.writeUInt32LE(v, i * 4));
    await client.set('k4:slot:0:got', Buffer.concat([head, Buffer.from('xy'), Buffer.alloc(1000, 1)]));
    expect(await client.sendCommand(['PL.CLOSE', 'k4', 'k4:avg'])).toEqual([1, 3, 1]);
    expect((await getBytes(client, 'k4:avg'))!.equals(bytes(f32(1, 2)))).toBe(true);
  });

  it('are reached only by a user whose ACL grants them', async () => {
    await client.set('k5:blocks', 'victim');
    await client.set('k5:slot:0', 'precious12345678');
    await client.sendCommand(['ACL', 'SETUSER', 'narrow', 'reset', 'on', '>narrow-pw', '~k5', '~k5avg', '+@all', '-@dangerous']);
    const narrow = client.duplicate({ username: 'narrow', password: 'narrow-pw' });
    narrow.on('error', () => {});
    await narrow.connect();
    try {
      const before = await snapshot(client, 'k5*');
      expect(await errorOf(narrow, 'PL.ACCUM', 'k5', 'k5avg', 'idA', '3', bytes(f32(1, 2))))
        .toBe('ERR peerless: no permission: this user\'s ACL does not grant key "k5:ids", which sum "k5" keeps beside it');
      expect(await errorOf(narrow, 'PL.PUSH', 'k5', 'k5avg', 'idB', 'att1', '3', '2', '1', '0', bytes(f32(5))))
        .toMatch(/no permission: .* "k5:ids"/);
      expect(await snapshot(client, 'k5*')).toEqual(before);
      // Granted the sum's keys as a whole (as the functions' user is, with ~g:*), it accumulates.
      await client.sendCommand(['ACL', 'SETUSER', 'narrow', '~k6', '~k6:*', '~k6avg', '~k6avg:*']);
      expect(await narrow.sendCommand(['PL.ACCUM', 'k6', 'k6avg', 'idA', '1', bytes(f32(1, 2)), 'ROUND', '1'])).toEqual([1, 1, 1]);
    } finally {
      await narrow.close();
      await client.sendCommand(['ACL', 'DELUSER', 'narrow']);
    }
  });
});
