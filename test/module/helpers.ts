/**
 * Shared helpers of the module tests: real redis-servers with the module, a raw client that
 * can send and receive bytes, float32 helpers, and a whole-database snapshot used to check
 * that a refused command changed nothing.
 */
import { createClient, RESP_TYPES } from 'redis';
import { mulberry32 } from '../../src/data/random.ts';
import { startRedisServer, type RedisServer, type RedisServerOptions } from '../../src/cluster/redis-server.ts';

export type Client = ReturnType<typeof createClient>;
export type Arg = string | Buffer;

/** Bulk replies as Buffers (tensors are bytes). */
export const BUFFERS = { typeMapping: { [RESP_TYPES.BLOB_STRING]: Buffer } } as const;

/**
 * A client that fails at once when its server is gone (no reconnection, no queue of commands
 * waiting for one): a command that takes the server down fails its test there and then.
 */
export async function connect(server: RedisServer): Promise<Client> {
  const client = createClient({ url: server.url, disableOfflineQueue: true, socket: { reconnectStrategy: false } });
  client.on('error', () => {});
  await client.connect();
  return client;
}

export async function start(opts: RedisServerOptions = {}): Promise<{ server: RedisServer; client: Client }> {
  const server = await startRedisServer(opts);
  return { server, client: await connect(server) };
}

export async function stopAll(...items: ({ close(): Promise<void> } | RedisServer | undefined)[]): Promise<void> {
  for (const it of items) {
    if (!it) continue;
    try {
      if ('stop' in it) await it.stop();
      else await it.close();
    } catch {
      /* already gone */
    }
  }
}

/**
 * Listens on the channel where the module announces completed averages: the names heard so
 * far, and a close for the listening connection.
 */
export async function listenForAverages(client: Client): Promise<{ announced: string[]; close(): Promise<void> }> {
  const sub = client.duplicate();
  sub.on('error', () => {});
  await sub.connect();
  const announced: string[] = [];
  await sub.subscribe('peerless:averaged', (m) => announced.push(m));
  return { announced, close: () => sub.close() };
}

/** Sends a raw command; bulk replies come back as Buffers. */
export function cmd<T = unknown>(client: Client, ...args: Arg[]): Promise<T> {
  return client.sendCommand(args, BUFFERS) as Promise<T>;
}

/** The error message a command fails with (throws if it succeeds). */
export async function errorOf(client: Client, ...args: Arg[]): Promise<string> {
  try {
    await client.sendCommand(args);
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error(`expected ${String(args[0])} to fail`);
}

export const bytes = (t: Float32Array): Buffer => Buffer.from(t.buffer, t.byteOffset, t.byteLength);

/** Client Buffers are not 4-aligned: copy before viewing as float32. */
export function floats(b: Buffer): Float32Array {
  const out = new Float32Array(b.length / 4);
  new Uint8Array(out.buffer).set(b);
  return out;
}

export const f32 = (...xs: number[]): Float32Array => Float32Array.from(xs);

/** Deterministic pseudo-random numbers (mulberry32). */
export const rng = mulberry32;

export function randomTensor(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (r() - 0.5) * 2 * scale;
  return out;
}

export async function getTensor(client: Client, key: string): Promise<Float32Array> {
  return floats(await cmd<Buffer>(client, 'GET', key));
}

export async function getBytes(client: Client, key: string): Promise<Buffer | null> {
  return cmd<Buffer | null>(client, 'GET', key);
}

/** Every key (matching `pattern`) with its type and DUMP: equal snapshots mean nothing changed. */
export async function snapshot(client: Client, pattern = '*'): Promise<Map<string, string>> {
  const keys = ((await cmd<Buffer[]>(client, 'KEYS', pattern)) ?? []).map((k) => k.toString('latin1')).sort();
  const out = new Map<string, string>();
  for (const k of keys) {
    const key = Buffer.from(k, 'latin1');
    const type = await client.sendCommand(['TYPE', key]);
    const dump = await cmd<Buffer>(client, 'DUMP', key);
    const ttl = await client.sendCommand(['PEXPIRETIME', key]);
    out.set(k, `${String(type)}:${String(ttl)}:${dump.toString('hex')}`);
  }
  return out;
}

/** Waits until `fn` returns true (polling), or fails after `ms`. */
export async function waitFor(fn: () => Promise<boolean>, ms = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
