import { readFileSync } from 'node:fs';
import { withTimeout } from '../platform/retry.ts';
import { createClient, RESP_TYPES, type RedisClientType } from 'redis';

/** Where a Redis is and how to enter it (function events carry it too). */
export interface RedisLocation {
  url: string;
  /** An ACL user; without one, the default user. */
  username?: string;
  password?: string;
}

export type Redis = RedisClientType;

/**
 * The certificate authority `rediss://` connections trust besides the system's: the PEM file
 * named by PEERLESS_TLS_CA (`train --tls` sets it to its throwaway CA; functions and peers
 * read it from their environment).
 */
export const TLS_CA_ENV = 'PEERLESS_TLS_CA';

function tlsOptions(url: string): { tls: true; ca?: Buffer } | Record<string, never> {
  if (!url.startsWith('rediss:')) return {};
  const file = process.env[TLS_CA_ENV];
  if (!file) return { tls: true };
  try {
    return { tls: true, ca: readFileSync(file) };
  } catch (err) {
    throw new Error(`${TLS_CA_ENV}=${file}: cannot read the CA certificate (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

/** Ask node-redis for Buffers, not strings, for bulk replies: tensors are bytes. */
export const BUFFER_REPLIES = { typeMapping: { [RESP_TYPES.BLOB_STRING]: Buffer } } as const;

/**
 * Connects to a Redis with a bounded number of attempts, so an unreachable peer is a
 * clear error instead of an endless reconnect loop. Once connected, short outages are
 * retried with backoff (a restarting peer comes back).
 */
export async function connectRedis(
  location: RedisLocation,
  opts: {
    name?: string;
    connectTimeoutMs?: number;
    /** Fail commands at once while disconnected, instead of queueing them. */
    failFast?: boolean;
    /** Once connected, keep reconnecting for as long as the client lives (a peer's own Redis). */
    reconnectForever?: boolean;
  } = {},
): Promise<Redis> {
  let connected = false;
  let lastError: Error | undefined;
  const client = createClient({
    url: location.url,
    username: location.username,
    password: location.password,
    name: opts.name,
    disableOfflineQueue: opts.failFast ?? false,
    socket: {
      ...tlsOptions(location.url),
      connectTimeout: opts.connectTimeoutMs ?? 5_000,
      reconnectStrategy: (retries: number) => {
        // A refused password does not pass by retrying.
        if (!connected && (retries >= 2 || isAuthError(lastError))) return lastError ?? new Error('connection failed');
        if (retries > 20 && !opts.reconnectForever) return new Error(`lost Redis at ${location.url}`);
        return Math.min(50 * 2 ** retries, 2_000);
      },
    },
  }) as unknown as Redis;
  // node-redis emits 'error' on every failed reconnect; callers see failures through commands.
  client.on('error', (err: Error) => { lastError = err; });
  // Bounded, the handshake too (node-redis sends commands while connecting): something that
  // accepts the connection and never answers (a peer cut off mid-stream, another service on
  // the port) must not hold the caller forever.
  const answerMs = opts.connectTimeoutMs ?? 5_000;
  const answered = <T>(work: Promise<T>): Promise<T> => withTimeout(work, answerMs, () => new Error(`no answer within ${answerMs} ms`));
  try {
    await answered(client.connect());
  } catch (err) {
    try { client.destroy(); } catch { /* never opened */ }
    const cause = lastError ?? (err as Error);
    if (isAuthError(cause)) throw new Error(`Redis at ${location.url} refused the credentials: ${cause.message}`);
    throw new Error(`cannot reach Redis at ${location.url}: ${cause.message || (cause as NodeJS.ErrnoException).code || 'connection failed'}`);
  }
  connected = true;
  // Without a password node-redis sends nothing at connect: a PING finds a server that wants one.
  // A server that has just started with its data on disk answers LOADING until it has read it
  // (a resumed run): wait for it, within a bound.
  const loadingUntil = Date.now() + LOADING_WAIT_MS;
  for (;;) {
    try {
      await answered(client.ping());
      return client;
    } catch (err) {
      const msg = (err as Error).message;
      if (/^LOADING/.test(msg) && Date.now() < loadingUntil) {
        await new Promise((r) => setTimeout(r, 50));
        continue;
      }
      client.destroy();
      if (/^LOADING/.test(msg)) throw new Error(`Redis at ${location.url} is still loading its data after ${LOADING_WAIT_MS / 1000} s`);
      throw new Error(isAuthError(err as Error) ? `Redis at ${location.url} refused the credentials: ${msg}` : `Redis at ${location.url} does not answer PING: ${msg}`);
    }
  }
}

/** How long a client waits for a server still loading its data from disk. */
const LOADING_WAIT_MS = 120_000;

function isAuthError(err: Error | undefined): boolean {
  return err !== undefined && /WRONGPASS|NOAUTH|invalid password|invalid username|AUTH/.test(err.message);
}

/** A Redis URL fit for logs, errors and records: the same address without its user and password. */
export function withoutCredentials(url: string): string {
  const u = new URL(url);
  if (!u.username && !u.password) return url;
  u.username = '';
  u.password = '';
  return u.toString();
}

/** One line naming why a connection failed: the socket code, else the message. */
export function connectionCause(err: Error): string {
  const code = (err as NodeJS.ErrnoException).code;
  return code ? `${code}: ${err.message}` : err.message || err.name;
}

/**
 * Closes a client, ignoring a connection that is already gone. Both `close` and `destroy`
 * throw ClientClosedError on a client closed before (a link dropped at a deadline and then
 * closed at shutdown), so neither may escape: it would surface as an uncaught error.
 */
export async function closeRedis(client: Redis): Promise<void> {
  if (!client.isOpen) return;
  try {
    await client.close();
  } catch {
    try {
      client.destroy();
    } catch {
      // already closed by another path
    }
  }
}
