import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedisServer, type RedisServer } from '../../cluster/redis-server.ts';
import type { OptimizerConfig } from '../../config/training.ts';
import { adamCommand, call, InDbTensorStore, sgdCommand } from '../../tensor/in-db.ts';
import { closeRedis, connectRedis, type Redis } from '../../tensor/redis-client.ts';
import { K } from '../net/keys.ts';
import { applyUpdate, installGathered, stepSlice, UPDATE_PIECE } from './update.ts';

/** A vector long enough to be updated in pieces (three), with batch-norm slots at the end. */
const LENGTH = 2 * UPDATE_PIECE + 300_007;
const TRAINABLE = LENGTH - 1_000;
const model = { layoutHash: 'update-spec', length: LENGTH, trainable: TRAINABLE };

let server: RedisServer;
let local: Redis;
let store: InDbTensorStore;

function random(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) { s = (s * 1664525 + 1013904223) >>> 0; out[i] = (s / 2 ** 32 - 0.5) * 2 * scale; }
  return out;
}

beforeAll(async () => {
  server = await startRedisServer();
  local = await connectRedis({ url: server.url });
  store = new InDbTensorStore(local);
});

afterAll(async () => {
  await closeRedis(local);
  await server.stop();
});

/**
 * The same rounds taken by the reference: one whole optimizer command per round on copies
 * ("w:" keys), the statistics copied after it.
 */
async function wholeStep(o: OptimizerConfig, round: number): Promise<void> {
  const agg = K.aggregate(round);
  await call(local, o.kind === 'sgd'
    ? sgdCommand('w:params', agg, 'w:velocity', { ...o, lr: o.lr })
    : adamCommand('w:params', agg, 'w:m', 'w:v', 'w:step', { ...o, lr: o.lr }));
  await call(local, ['PL.COPYRANGE', 'w:params', String(TRAINABLE), agg, String(TRAINABLE), String(LENGTH - TRAINABLE)]);
}

async function same(a: string, b: string): Promise<boolean> {
  return (await store.checksum(a)) === (await store.checksum(b));
}

/** A client whose `failAt`-th MULTI is lost before it reaches the server (a crash between pieces). */
function crashingAt(failAt: number): Redis {
  let n = 0;
  return new Proxy(local, {
    get(target, prop) {
      if (prop !== 'multi') return Reflect.get(target, prop, target);
      return () => {
        const tx = target.multi();
        if (++n === failAt) tx.exec = (async () => { throw new Error('connection lost'); }) as typeof tx.exec;
        return tx;
      };
    },
  });
}

describe('the update phase in pieces', () => {
  it.each<OptimizerConfig>([
    { kind: 'sgd', lr: 0.05, momentum: 0.9, weightDecay: 1e-4, nesterov: false },
    { kind: 'adam', lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, decoupled: true },
  ])('gives the bytes of one whole step per round, and applies no piece twice across a crash: $kind', async (o) => {
    await local.flushAll();
    const params = random(LENGTH, 1);
    await store.set(K.params, params);
    await store.set('w:params', params);
    for (const round of [0, 1, 2]) {
      await store.set(K.aggregate(round), random(LENGTH, 10 + round, 0.01));
      await wholeStep(o, round);
      if (round === 1) {
        // The peer dies after the first piece of round 1 went in, then runs the update again.
        await expect(applyUpdate({ peer: 'p0', round, local: crashingAt(2), optimizer: o, lr: o.lr, model })).rejects.toThrow('connection lost');
        expect(await local.get(K.round)).toBe('1');
      }
      expect(await applyUpdate({ peer: 'p0', round, local, optimizer: o, lr: o.lr, model })).toBe(true);
      expect(await local.get(K.round)).toBe(String(round + 1));
      // Applied once: a second call changes nothing.
      expect(await applyUpdate({ peer: 'p0', round, local, optimizer: o, lr: o.lr, model })).toBe(false);
      expect(await local.exists([K.updatePlan(round), K.updatedPieces(round)])).toBe(0);
    }
    expect(await same(K.params, 'w:params')).toBe(true);
    if (o.kind === 'sgd') expect(await same(K.velocity, 'w:velocity')).toBe(true);
    else {
      expect(await same(K.adamM, 'w:m')).toBe(true);
      expect(await same(K.adamV, 'w:v')).toBe(true);
      expect(await local.get(K.adamStep)).toBe('3');
    }
  });
});

describe("exchange 'sharded-step': the owner's step on its slice, then the swap", () => {
  it.each<OptimizerConfig>([
    { kind: 'sgd', lr: 0.05, momentum: 0.9, weightDecay: 1e-4, nesterov: false },
    { kind: 'adam', lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, decoupled: true },
  ])('steps the slice once across a crash halfway and a second call, and the swap installs the round: $kind', async (o) => {
    await local.flushAll();
    const params = random(LENGTH, 1);
    await store.set(K.params, params);
    await store.set('w:params', params);
    // This peer owns the elements from inside the first piece to the end (statistics included);
    // the rest comes from "another owner": here, the reference's bytes.
    const slice = { offset: 123_457, count: LENGTH - 123_457 };
    for (const round of [0, 1, 2]) {
      await store.set(K.aggregate(round), random(LENGTH, 10 + round, 0.01));
      await store.zeros(K.nextParams(round), LENGTH);
      await wholeStep(o, round);
      const u = { peer: 'p0', round, local, optimizer: o, lr: o.lr, model };
      const outside = async () => Buffer.from((await store.getRange(K.params, 0, slice.offset)).buffer);
      const before = await outside();
      if (round === 1) await expect(stepSlice({ ...u, local: crashingAt(2) }, slice)).rejects.toThrow('connection lost');
      await stepSlice(u, slice);
      await stepSlice(u, slice); // taken once: a second call changes nothing
      // Outside the slice the parameters are untouched until the swap.
      expect((await outside()).equals(before)).toBe(true);
      await call(local, ['PL.COPYRANGE', K.nextParams(round), String(slice.offset), K.params, String(slice.offset), String(slice.count)]);
      await call(local, ['PL.COPYRANGE', K.nextParams(round), '0', 'w:params', '0', String(slice.offset)]);
      expect(await installGathered(u)).toBe(true);
      expect(await installGathered(u)).toBe(false);
      expect(await local.get(K.round)).toBe(String(round + 1));
      expect(await same(K.params, 'w:params')).toBe(true);
      expect(await local.exists([K.updatePlan(round), K.updatedPieces(round), K.paramsSwap])).toBe(0);
      // Restarted after the install, the peer runs the round's phases again: no second step.
      const state = o.kind === 'sgd' ? [K.velocity] : [K.adamM, K.adamV];
      const kept = await Promise.all(state.map((k) => store.checksum(k)));
      await local.del(K.stepped(round)); // even without its marker: the round marker says so
      await stepSlice(u, slice);
      expect(await same(K.params, 'w:params')).toBe(true);
      expect(await Promise.all(state.map((k) => store.checksum(k)))).toEqual(kept);
    }
    // The optimizer state of the slice is the whole step's.
    for (const [mine, ref] of o.kind === 'sgd' ? [[K.velocity, 'w:velocity']] : [[K.adamM, 'w:m'], [K.adamV, 'w:v']]) {
      const a = await store.getRange(mine, slice.offset, slice.count), b = await store.getRange(ref, slice.offset, slice.count);
      expect(Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength))).toBe(true);
    }
    if (o.kind === 'adam') expect(await local.get(K.adamStep)).toBe('3');
  });
});
