import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { call as send } from './in-db.ts';
import { chunks } from './bytes.ts';
import { closeRedis, connectRedis, type Redis, type RedisLocation } from './redis-client.ts';
import { RetriesExhausted, withRetries } from '../platform/retry.ts';

/**
 * The one path tensors take between Redis servers: fixed-size chunks, read with PL.GETRANGE
 * and written with PL.SETRANGE into a key that already exists at full size, pipelined over
 * each connection, with a bound on the bytes this process holds at once. A big value never
 * travels as one argument (Redis would allocate fresh memory for it and stall its other
 * clients), and the destination's memory is reused round after round.
 */
export interface TransferOptions {
  /** Elements per chunk (default 256 Ki: 1 MiB). */
  chunkElements?: number;
  /** Bytes of chunks held in this process at once (default 16 MiB). */
  maxInFlightBytes?: number;
}

export const DEFAULT_CHUNK_ELEMENTS = 1 << 18;
export const DEFAULT_MAX_IN_FLIGHT_BYTES = 16 << 20;

/**
 * Makes `key` a tensor of exactly `length` elements. It allocates only when the key is
 * missing or of another length (a new membership or layout); returns whether it did.
 */
export async function ensureTensor(client: Redis, key: string, length: number): Promise<boolean> {
  const bytes = Number(await client.strLen(key));
  if (bytes === length * 4) return false;
  await send(client, ['PL.ZEROS', key, String(length)]);
  return true;
}

/** Elements per PL.COPYRANGE command: a 16 MiB memcpy, a few ms of the server's time. */
export const COPY_PIECE = 1 << 22;

/**
 * Copies a range between two tensors of one Redis, inside it (PL.COPYRANGE): no bytes leave
 * it. A long range goes in pieces, one command after another, so the server's other clients
 * are served between them (a ResNet-18 vector in one command held it ~20 ms).
 */
export async function copyRange(client: Redis, srcKey: string, srcOffset: number, count: number, dstKey: string, dstOffset: number): Promise<void> {
  const piece = (done: number, n: number) => send(client, ['PL.COPYRANGE', dstKey, String(dstOffset + done), srcKey, String(srcOffset + done), String(n)]);
  if (count <= COPY_PIECE) {
    await piece(0, count);
    return;
  }
  for (const c of chunks(count, COPY_PIECE)) await piece(c.offset, c.count);
}

/**
 * Streams elements [srcOffset, srcOffset + count) of `srcKey` in `from` into `dstKey` at
 * `dstOffset` in `to` (which may be the same server). The destination must already hold
 * them (see ensureTensor). Returns the bytes moved.
 */
export async function streamTensor(
  from: Redis, srcKey: string, srcOffset: number, count: number,
  to: Redis, dstKey: string, dstOffset: number,
  o: TransferOptions = {},
): Promise<number> {
  const target: StreamTarget = { client: to, key: dstKey, offset: dstOffset };
  await fanOutTensor(from, srcKey, srcOffset, count, [target], undefined, o);
  if (target.error) throw target.error;
  return count * 4;
}

/** A destination of a fan-out: a Redis and the key and offset to write at. */
export interface StreamTarget {
  client: Redis;
  key: string;
  offset: number;
  /** Set when a write to it failed or took longer than `writeTimeoutMs`: it gets nothing more. */
  error?: Error;
}

/**
 * Streams one range of `srcKey` into several destinations, reading each chunk once (the
 * exchange "all" sends the same average to every peer). A destination that fails or is slower
 * than `writeTimeoutMs` (when given) on a chunk is given up (its `error` set) without holding
 * up the others.
 * Returns the destinations that received everything.
 */
export async function fanOutTensor(
  from: Redis, srcKey: string, srcOffset: number, count: number,
  targets: StreamTarget[], writeTimeoutMs: number | undefined, o: TransferOptions = {},
): Promise<StreamTarget[]> {
  const { chunk, lanes } = pacing(o);
  const chunks = Math.ceil(count / chunk);
  const write = (t: StreamTarget, off: number, bytes: Buffer) => {
    let timer: NodeJS.Timeout | undefined;
    const written = send(t.client, ['PL.SETRANGE', t.key, String(t.offset + off), bytes]);
    const late = writeTimeoutMs === undefined ? [] : [new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${writeTimeoutMs} ms`)), writeTimeoutMs);
    })];
    return Promise.race([written, ...late])
      .catch((err: Error) => { t.error ??= err; })
      .finally(() => clearTimeout(timer));
  };
  await inLanes(chunks, lanes, async (i) => {
    const live = targets.filter((t) => !t.error);
    if (live.length === 0) return;
    const off = i * chunk, n = Math.min(chunk, count - off);
    const bytes = await send<Buffer>(from, ['PL.GETRANGE', srcKey, String(srcOffset + off), String(n)], true);
    await Promise.all(live.map((t) => write(t, off, bytes)));
  });
  return targets.filter((t) => !t.error);
}

/** Elements per chunk, and chunks in flight at once (the bound on bytes this process holds). */
function pacing(o: TransferOptions): { chunk: number; lanes: number } {
  const chunk = o.chunkElements ?? DEFAULT_CHUNK_ELEMENTS;
  return { chunk, lanes: Math.max(1, Math.floor((o.maxInFlightBytes ?? DEFAULT_MAX_IN_FLIGHT_BYTES) / (chunk * 4))) };
}

/**
 * Runs work(0 .. count-1) in `lanes` concurrent lanes, each taking the next index when it is
 * free: the bound on chunks (and bytes) in flight, pipelined over one connection.
 */
async function inLanes(count: number, lanes: number, work: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async () => {
    for (let i = next++; i < count; i = next++) await work(i);
  };
  await Promise.all(Array.from({ length: Math.min(lanes, count) }, lane));
}

/**
 * Writes `values` from this process's memory into elements [offset, offset + values.length)
 * of `key`, a tensor that already exists at full size: fixed-size PL.SETRANGE chunks, pipelined
 * with a bound on bytes in flight, straight from `values`' memory. The plain write every
 * ingest path must at least do (`bench round` measures its limit with it).
 */
export async function writeChunks(client: Redis, key: string, offset: number, values: Float32Array, o: TransferOptions = {}): Promise<void> {
  const { chunk, lanes } = pacing(o);
  const view = Buffer.from(values.buffer, values.byteOffset, values.byteLength);
  await inLanes(Math.ceil(values.length / chunk), lanes, async (i) => {
    const off = i * chunk, n = Math.min(chunk, values.length - off);
    await send(client, ['PL.SETRANGE', key, String(offset + off), view.subarray(off * 4, (off + n) * 4)]);
  });
}

/** Where another Redis listens and whom to log in as, for the module to send to it itself. */
export interface DirectRoute {
  host: string;
  port: number;
  username?: string;
  password?: string;
}

/**
 * The route PL.SEND takes to the Redis at `url`, or null when the module cannot send there
 * itself: over TLS (rediss://) it speaks no TLS, so those bytes are relayed.
 */
export function directRoute(url: string, login?: { username?: string; password?: string }): DirectRoute | null {
  const u = new URL(url);
  if (u.protocol !== 'redis:') return null;
  return {
    host: u.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: Number(u.port || 6379),
    username: login?.username ?? (u.username ? decodeURIComponent(u.username) : undefined),
    password: login?.password ?? (u.password ? decodeURIComponent(u.password) : undefined),
  };
}

/**
 * Sends tensor ranges from one Redis straight into others (PL.SEND): the module connects to
 * the destination and writes the chunks there itself, so the bytes cross one socket and never
 * enter this process, where a relay (fanOutTensor) moves each byte through two sockets and
 * this process's buffers. PL.SEND blocks the connection that asked until the destination
 * acknowledged every chunk, so each send in flight takes a connection of its own from a pool.
 */
export class DirectSender {
  private readonly idle: Redis[] = [];
  private closed = false;

  constructor(private readonly source: RedisLocation) {}

  /**
   * Elements [srcOffset, srcOffset + count) of `srcKey` into `dstKey` at `dstOffset` in the
   * Redis `route` leads to; `dstKey` must exist there at full size. Returns the bytes moved.
   */
  async send(srcKey: string, srcOffset: number, count: number, route: DirectRoute, dstKey: string, dstOffset: number,
    o: TransferOptions & { timeoutMs?: number } = {}): Promise<number> {
    // The module takes addresses only (a resolver would block its server).
    const host = isIP(route.host) ? route.host : (await lookup(route.host).catch((err: NodeJS.ErrnoException) => {
      throw new Error(`PL.SEND: cannot connect to ${route.host}:${route.port} (cannot resolve the host: ${err.code ?? err.message})`);
    })).address;
    const lane = this.idle.pop() ?? await connectRedis(this.source, { name: 'peerless-send', failFast: true });
    let healthy = true;
    try {
      const args = ['PL.SEND', srcKey, String(srcOffset), String(count), host, String(route.port), dstKey, String(dstOffset),
        'CHUNK', String(o.chunkElements ?? DEFAULT_CHUNK_ELEMENTS), 'TIMEOUT', String(o.timeoutMs ?? 60_000)];
      if (route.password !== undefined) args.push('AUTH', route.username ?? 'default', route.password);
      return Number(await send<number>(lane, args));
    } catch (err) {
      healthy = lane.isOpen;
      throw err;
    } finally {
      if (healthy && !this.closed) this.idle.push(lane);
      else void closeRedis(lane);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.idle.splice(0).map(closeRedis));
  }
}

/** Where a contribution is summed: PL.PUSH's keys, id and round. */
export interface PushTarget {
  sumKey: string;
  avgKey: string;
  contributionId: string;
  expected: number;
  round?: number;
}

export interface PushResult {
  /** The accumulation's state after the last chunk: contributions counted, expected, averaged. */
  count: number;
  expected: number;
  done: boolean;
  chunks: number;
}

/** The module's answer when every staging slot holds an attempt in progress: wait, then resend. */
const SLOTS_FULL = /no free staging slot/;

/**
 * Pushes one contribution (a function's gradient) in fixed-size chunks with PL.PUSH, pipelined
 * over one connection with a bound on bytes in flight, straight from `values`' memory (no
 * copy). `attempt` names this sending: the module counts the contribution once, when one
 * attempt's chunks are all in, and withdraws any attempt that never completes, so a writer that
 * dies halfway and is retried in full (under a new attempt name) counts once and whole.
 * `result`, when given, goes with every chunk and is kept with the counted id (PL.PUSH RESULT),
 * where the caller can read it if this writer's answer never reaches it (landedResult).
 */
export async function pushChunks(
  client: Redis, target: PushTarget, values: Float32Array, attempt: string,
  o: TransferOptions & { slotWaitMs?: number; result?: string } = {},
): Promise<PushResult> {
  const { chunk, lanes } = pacing(o);
  const total = values.length;
  const chunks = Math.ceil(total / chunk);
  const view = Buffer.from(values.buffer, values.byteOffset, values.byteLength);
  const until = performance.now() + (o.slotWaitMs ?? 30_000);
  const head = ['PL.PUSH', target.sumKey, target.avgKey, target.contributionId, attempt, String(target.expected), String(total), String(chunk)];
  const tail = [...(target.round === undefined ? [] : ['ROUND', String(target.round)]), ...(o.result === undefined ? [] : ['RESULT', o.result])];
  let last: number[] = [0, target.expected, 0];
  const sendChunk = async (i: number) => {
    const off = i * chunk, n = Math.min(chunk, total - off);
    const args = [...head, String(off), view.subarray(off * 4, (off + n) * 4), ...tail];
    const { value } = await withRetries(() => send<number[]>(client, args), (err) => SLOTS_FULL.test(String((err as Error)?.message)),
      { attempts: Infinity, baseDelayMs: 10, maxDelayMs: 500, until });
    if (Number(value[0]) >= Number(last[0])) last = value;
  };
  try {
    await inLanes(chunks, lanes, sendChunk);
  } catch (err) {
    throw err instanceof RetriesExhausted ? err.cause : err;
  }
  return { count: Number(last[0]), expected: Number(last[1]), done: Number(last[2]) === 1, chunks };
}
