import { createClient, RESP_TYPES, type RedisClientType } from 'redis';
import type { RedisLocation } from '../functions/events.ts';

export type Redis = RedisClientType;

/** Ask node-redis for Buffers, not strings, for bulk replies: tensors are bytes. */
export const BUFFER_REPLIES = { typeMapping: { [RESP_TYPES.BLOB_STRING]: Buffer } } as const;

/**
 * Connects to a Redis with a bounded number of attempts, so an unreachable peer is a
 * clear error instead of an endless reconnect loop. Once connected, short outages are
 * retried with backoff (a restarting peer comes back).
 */
export async function connectRedis(location: RedisLocation, opts: { name?: string; connectTimeoutMs?: number } = {}): Promise<Redis> {
  let connected = false;
  const client = createClient({
    url: location.url,
    password: location.password,
    name: opts.name,
    socket: {
      connectTimeout: opts.connectTimeoutMs ?? 5_000,
      reconnectStrategy: (retries: number) => {
        if (!connected && retries >= 2) return new Error(`cannot reach Redis at ${location.url}`);
        if (retries > 20) return new Error(`lost Redis at ${location.url}`);
        return Math.min(50 * 2 ** retries, 2_000);
      },
    },
  }) as unknown as Redis;
  // node-redis emits 'error' on every failed reconnect; callers see failures through commands.
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (err) {
    const msg = (err as Error).message;
    if (/WRONGPASS|NOAUTH|invalid password|invalid username/i.test(msg)) {
      throw new Error(`Redis at ${location.url} refused the credentials: ${msg}`);
    }
    throw new Error(`cannot reach Redis at ${location.url}: ${msg}`);
  }
  connected = true;
  return client;
}

/** Closes a client, ignoring a connection that is already gone. */
export async function closeRedis(client: Redis): Promise<void> {
  try {
    await client.close();
  } catch {
    client.destroy();
  }
}
