import type * as tfl from '@tensorflow/tfjs-layers';
import { initBackend } from '../model/backend.ts';
import { getLayout } from '../model/flat.ts';
import { buildModel } from '../model/zoo.ts';
import { InDbTensorStore } from '../tensor/in-db.ts';
import { BUFFER_REPLIES, connectRedis, type Redis } from '../tensor/redis-client.ts';
import type { ModelRef, RedisLocation } from './events.ts';

/**
 * What a warm function instance keeps between invocations: the compute backend, one model
 * per (name, width) and one connection per Redis. None of it is state of the training:
 * parameters and data are read from Redis on every call.
 */
const clients = new Map<string, Promise<Redis>>();
const models = new Map<string, { model: tfl.LayersModel; layoutHash: string }>();
let coldStart = true;

/** True on the first invocation of this instance (a cold start), false afterwards. */
export function takeColdStart(): boolean {
  const c = coldStart;
  coldStart = false;
  return c;
}

export async function redisFor(location: RedisLocation): Promise<{ client: Redis; store: InDbTensorStore }> {
  const key = `${location.url}\u0000${location.password ?? ''}`;
  let c = clients.get(key);
  if (!c) {
    c = connectRedis(location, { name: 'peerless-function' });
    c.catch(() => clients.delete(key));
    clients.set(key, c);
  }
  const client = await c;
  if (!client.isReady) {
    clients.delete(key);
    return redisFor(location);
  }
  return { client, store: new InDbTensorStore(client) };
}

export async function modelFor(ref: ModelRef): Promise<{ model: tfl.LayersModel; layoutHash: string }> {
  const width = ref.width ?? 1;
  const key = `${ref.name}@${width}`;
  let m = models.get(key);
  if (!m) {
    await initBackend(process.env.PEERLESS_BACKEND as 'wasm' | 'cpu' | 'tensorflow' | 'auto' | undefined);
    // The seed does not matter: the parameters are replaced by the peer's on every call.
    const model = buildModel(ref.name, width, 0);
    m = { model, layoutHash: getLayout(model).hash };
    models.set(key, m);
  }
  return m;
}

/**
 * Checks that the peer's stored layout, the event's and this function's model agree, so
 * a gradient is never computed for (or pushed into) another model's vector.
 */
export async function checkLayout(client: Redis, layoutKey: string, expected: string, own: string, model: string): Promise<void> {
  const stored = await client.get(layoutKey);
  if (stored === null) throw new Error(`missing key "${layoutKey}": the peer's Redis holds no model layout`);
  if (stored !== expected) throw new Error(`layout hash mismatch: the event expects ${expected}, the peer's Redis holds ${stored}`);
  if (own !== expected) throw new Error(`layout hash mismatch: this function's ${model} has layout ${own}, the peer's model ${expected}`);
}

/** Reads a plain-string value as bytes; a missing key is an error naming the key. */
export async function readBytes(client: Redis, key: string, start = 0, end = -1): Promise<Buffer> {
  const b = (await client.sendCommand(['GETRANGE', key, String(start), String(end)], BUFFER_REPLIES)) as Buffer;
  if (b.length === 0 && Number(await client.exists(key)) === 0) throw new Error(`missing key "${key}"`);
  return b;
}
