import type * as tfl from '@tensorflow/tfjs-layers';
import { initBackend, type BackendChoice } from '../model/backend.ts';
import { MNIST_SPEC, type SampleSpec } from '../data/spec.ts';
import { buildFromTopology } from '../model/custom.ts';
import { getLayout } from '../model/flat.ts';
import { nativeAddon } from '../model/native-backend.ts';
import { buildModel } from '../model/zoo.ts';
import { InDbTensorStore } from '../tensor/in-db.ts';
import { BUFFER_REPLIES, connectRedis, type Redis } from '../tensor/redis-client.ts';
import { redisCredentials } from './credentials.ts';
import type { FunctionRedis, ModelRef } from './events.ts';

/**
 * What a warm function instance keeps between invocations: the compute backend, one model
 * per (name, width, samples) or custom topology, and one connection per Redis. None of it is state of the training:
 * parameters and data are read from Redis on every call.
 */
const clients = new Map<string, Promise<Redis>>();
const models = new Map<string, Promise<{ model: tfl.LayersModel; layoutHash: string }>>();
let active: string | undefined;

/**
 * The backend a function instance uses: the one an event asked for last, else PEERLESS_BACKEND,
 * else 'auto' (tfjs-node if present, native where its addon loads, else wasm).
 */
export async function initFunctionBackend(): Promise<string> {
  active = await initBackend((active ?? process.env.PEERLESS_BACKEND ?? 'auto') as BackendChoice);
  return active;
}

/**
 * The backend as a gradient reports it: native with more than one thread is named so (a
 * filter gradient's sums are split among the threads, so its bits depend on their count: a
 * run whose functions use other counts ends with another checksum).
 */
export function backendLabel(name: string): string {
  if (name !== 'native') return name;
  const addon = nativeAddon();
  const threads = addon instanceof Error ? 1 : addon.info().threads;
  return threads > 1 ? `native (${threads} threads)` : name;
}

/** Computes on `wanted` (the backend the network's plan fixes), or fails saying why it cannot. */
export async function ensureBackend(wanted: string | undefined): Promise<string> {
  if (!wanted) return initFunctionBackend();
  try {
    active = await initBackend(wanted as BackendChoice);
    return active;
  } catch (err) {
    throw new Error(`this function cannot compute on "${wanted}", the backend the network's plan fixes: ${(err as Error).message.split('\n')[0]}`);
  }
}

export async function redisFor(location: FunctionRedis): Promise<{ client: Redis; store: InDbTensorStore }> {
  const { username, password } = redisCredentials();
  const key = `${location.url}\u0000${username ?? ''}\u0000${password ?? ''}`;
  let c = clients.get(key);
  if (!c) {
    c = connectRedis({ url: location.url, username, password }, { name: 'peerless-function' });
    // A failed connect must not stick: the next invocation tries again.
    c.catch(() => clients.delete(key));
    clients.set(key, c);
  }
  const client = await c;
  if (!client.isReady) {
    // Gave up reconnecting (the peer's Redis restarted or went away): start afresh.
    clients.delete(key);
    client.destroy();
    return redisFor(location);
  }
  return { client, store: new InDbTensorStore(client) };
}

/**
 * The model of `ref` for samples `spec`: a zoo model built for them, or a custom model built
 * from the topology in the peer's Redis (read once per instance: its name is its hash).
 */
export async function modelFor(ref: ModelRef, spec: SampleSpec = MNIST_SPEC, client?: Redis): Promise<{ model: tfl.LayersModel; layoutHash: string; built: boolean }> {
  const width = ref.width ?? 1;
  const key = ref.topologyKey ? ref.name : `${ref.name}@${width}@${spec.shape.join('x')}@${spec.classes}@${spec.targets ?? 0}`;
  let m = models.get(key);
  // Whether this invocation built the model (a warm instance's later ones reuse it).
  const built = !m;
  if (!m) {
    m = (async () => {
      await initFunctionBackend();
      // The seed does not matter: the parameters are replaced by the peer's on every call.
      const model = ref.topologyKey ? await customModel(ref.name, ref.topologyKey, client) : buildModel(ref.name, width, 0, spec);
      return { model, layoutHash: getLayout(model).hash };
    })();
    m.catch(() => models.delete(key));
    models.set(key, m);
  }
  return { ...(await m), built };
}

async function customModel(name: string, topologyKey: string, client: Redis | undefined): Promise<tfl.LayersModel> {
  if (!client) throw new Error(`model ${name}: no Redis to read its topology from`);
  const topology = await client.get(topologyKey);
  if (topology === null) throw new Error(`missing key "${topologyKey}": the peer's Redis holds no model topology for ${name}`);
  const stored = (JSON.parse(topology) as { config?: { name?: unknown } }).config?.name;
  if (stored !== name) throw new Error(`"${topologyKey}" holds model ${String(stored)}, the event asks for ${name}`);
  return buildFromTopology(topology);
}

/**
 * The layout hash stored at `layoutKey`: the bare hash (what a peer writes) or the layout
 * as JSON with a `hash` field (what `layoutJson` writes).
 */
export async function readLayoutHash(client: Redis, layoutKey: string): Promise<string> {
  const v = await client.get(layoutKey);
  if (v === null) throw new Error(`missing key "${layoutKey}": the peer's Redis holds no model layout`);
  const s = String(v).trim();
  if (!s.startsWith('{')) return s;
  let hash: unknown;
  try {
    hash = (JSON.parse(s) as { hash?: unknown }).hash;
  } catch {
    hash = undefined;
  }
  if (typeof hash !== 'string') throw new Error(`"${layoutKey}" holds JSON without a string "hash": not a model layout`);
  return hash;
}

/**
 * Checks that the peer's stored layout, the event's and this function's model agree, so
 * a gradient is never computed for (or pushed into) another model's vector.
 */
export function checkLayout(stored: string, layoutKey: string, expected: string, own: string, model: string): void {
  if (stored !== expected) throw new Error(`layout hash mismatch: the event expects ${expected}, "${layoutKey}" holds ${stored}`);
  if (own !== expected) throw new Error(`layout hash mismatch: this function's ${model} has layout ${own}, the peer's model ${expected}`);
}

/** Reads a plain-string value (or a byte range of it); a missing key is an error naming the key. */
export async function readBytes(client: Redis, key: string, start = 0, end = -1): Promise<Buffer> {
  const b = (await client.sendCommand(['GETRANGE', key, String(start), String(end)], BUFFER_REPLIES)) as Buffer;
  if (b.length === 0 && Number(await client.exists(key)) === 0) throw new Error(`missing key "${key}"`);
  return b;
}

/** The parameters, read in ~4 MB PL.GETRANGE chunks (one 47 MB reply would stall the peer's Redis). */
export async function readParams(store: InDbTensorStore, key: string): Promise<Float32Array> {
  try {
    return await store.get(key);
  } catch (err) {
    const msg = (err as Error).message;
    if (/no such key|missing|not found|does not exist/i.test(msg)) throw new Error(`missing key "${key}" (parameters)`);
    throw new Error(`parameters "${key}": ${msg}`);
  }
}

/**
 * Awaits reads started together and throws the first failure in argument order, so the
 * layout check is reported before a missing key whatever finished first.
 */
export async function allInOrder<T extends readonly unknown[]>(reads: { [K in keyof T]: Promise<T[K]> }): Promise<T> {
  const settled = await Promise.allSettled(reads);
  for (const s of settled) if (s.status === 'rejected') throw s.reason;
  return settled.map((s) => (s as PromiseFulfilledResult<unknown>).value) as unknown as T;
}
