/**
 * PL.SEND between two real redis-servers with the module: the bytes that arrive, and what the
 * sender answers when the destination refuses, is gone, or never answers. Refusals of bad
 * arguments (before anything is sent) are in errors.spec.ts.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RedisServer } from '../../src/cluster/redis-server.ts';
import { freePort } from '../../src/cluster/redis-server.ts';
import { bytes, cmd, errorOf, getBytes, randomTensor, snapshot, start, stopAll, type Client } from './helpers.ts';

let from: { server: RedisServer; client: Client };
let to: { server: RedisServer; client: Client };
const PASSWORD = 'send-spec-secret';
const N = 100_003;
const SOURCE = randomTensor(N, 7);

const port = (s: RedisServer) => String(new URL(s.url).port);
const auth = ['AUTH', 'default', PASSWORD];

beforeAll(async () => {
  from = await start();
  to = await start();
  // The destination wants a password, as a peer's Redis does; this connection stays logged in.
  await cmd(to.client, 'CONFIG', 'SET', 'requirepass', PASSWORD);
  await cmd(from.client, 'PL.SET', 'src', bytes(SOURCE));
});

afterAll(async () => {
  await stopAll(from?.client, from?.server, to?.client, to?.server);
});

describe('PL.SEND', () => {
  it('writes a range into a tensor of another server, chunk by chunk, and answers the bytes sent', async () => {
    await cmd(to.client, 'PL.ZEROS', 'dst', String(N + 10));
    // 33,333 elements from 50,000 in chunks of 1,000 (the last one shorter), at offset 10 there.
    const sent = await cmd(from.client, 'PL.SEND', 'src', '50000', '33333', '127.0.0.1', port(to.server), 'dst', '10', ...auth, 'CHUNK', '1000');
    expect(sent).toBe(33_333 * 4);
    const got = (await getBytes(to.client, 'dst'))!;
    expect(got.subarray(40, 40 + 33_333 * 4).equals(bytes(SOURCE.subarray(50_000, 83_333)))).toBe(true);
    expect(got.subarray(0, 40).equals(Buffer.alloc(40))).toBe(true);
    expect(got.subarray(40 + 33_333 * 4).equals(Buffer.alloc((N + 10 - 10 - 33_333) * 4))).toBe(true);
    // The whole tensor in one default-sized chunk sequence, over IPv4 as a peer's address gives it.
    await cmd(to.client, 'PL.ZEROS', 'whole', String(N));
    await cmd(from.client, 'PL.SEND', 'src', '0', String(N), '127.0.0.1', port(to.server), 'whole', '0', ...auth);
    expect((await getBytes(to.client, 'whole'))!.equals(bytes(SOURCE))).toBe(true);
  });

  it('several sends at once from one server each get their own answer', async () => {
    // Each send blocks its own connection until it is acknowledged, so each takes one.
    const clients = await Promise.all(Array.from({ length: 4 }, async () => {
      const c = from.client.duplicate();
      c.on('error', () => {});
      await c.connect();
      return c;
    }));
    try {
      for (let i = 0; i < 4; i++) await cmd(to.client, 'PL.ZEROS', `par:${i}`, String(N));
      const answers = await Promise.all(clients.map((c, i) => cmd(c, 'PL.SEND', 'src', '0', String(N), '127.0.0.1', port(to.server), `par:${i}`, '0', ...auth, 'CHUNK', '4096')));
      expect(answers).toEqual([N * 4, N * 4, N * 4, N * 4]);
      for (let i = 0; i < 4; i++) expect((await getBytes(to.client, `par:${i}`))!.equals(bytes(SOURCE))).toBe(true);
    } finally {
      await Promise.all(clients.map((c) => c.close()));
    }
  });

  it('says what the destination refused, and changes nothing on either side', async () => {
    await cmd(to.client, 'PL.ZEROS', 'short', '100');
    const before = [await snapshot(from.client), await snapshot(to.client)];
    const dst = ['127.0.0.1', port(to.server)];
    const at = `PL.SEND to 127.0.0.1:${port(to.server)}: `;
    expect(await errorOf(from.client, 'PL.SEND', 'src', '0', '10', ...dst, 'short', '0', 'AUTH', 'default', 'wrong'))
      .toBe(`ERR peerless: ${at}refused: WRONGPASS invalid username-password pair or user is disabled.`);
    expect(await errorOf(from.client, 'PL.SEND', 'src', '0', '10', ...dst, 'short', '0'))
      .toBe(`ERR peerless: ${at}refused: NOAUTH Authentication required.`);
    expect(await errorOf(from.client, 'PL.SEND', 'src', '0', '10', ...dst, 'nope', '0', ...auth))
      .toBe(`ERR peerless: ${at}refused: ERR peerless: tensor "nope" does not exist`);
    expect(await errorOf(from.client, 'PL.SEND', 'src', '0', '200', ...dst, 'short', '0', ...auth))
      .toBe(`ERR peerless: ${at}refused: ERR peerless: slice [0, 200) does not fit tensor "short" of 100 elements`);
    expect([await snapshot(from.client), await snapshot(to.client)]).toEqual(before);
  });

  it('names a destination nobody listens at, and one that never answers, within the timeout', async () => {
    const closed = await freePort();
    expect(await errorOf(from.client, 'PL.SEND', 'src', '0', '10', '127.0.0.1', String(closed), 'd', '0'))
      .toBe(`ERR peerless: PL.SEND to 127.0.0.1:${closed}: cannot connect (Connection refused)`);
    // A listener that accepts and reads but never replies: the send gives up at its timeout.
    const sockets: Socket[] = [];
    const silent: Server = createServer((s) => { sockets.push(s); s.on('data', () => {}); });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    try {
      const silentPort = String((silent.address() as { port: number }).port);
      expect(await errorOf(from.client, 'PL.SEND', 'src', '0', '10', '127.0.0.1', silentPort, 'd', '0', 'TIMEOUT', '300'))
        .toBe(`ERR peerless: PL.SEND to 127.0.0.1:${silentPort}: timed out after 300 ms waiting for acknowledgements`);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => silent.close(() => r()));
    }
    expect(await cmd(from.client, 'PING')).toBe('PONG');
  });

  it('gives up at its timeout while the destination takes no more bytes, and the server goes on', async () => {
    // A listener that accepts and never reads: the socket's buffers fill, the server waits for
    // room on its event loop (serving others meanwhile), and the timeout ends the send.
    const sockets: Socket[] = [];
    const stuck: Server = createServer((s) => { sockets.push(s); s.pause(); });
    await new Promise<void>((r) => stuck.listen(0, '127.0.0.1', r));
    const lane = from.client.duplicate();
    lane.on('error', () => {});
    await lane.connect();
    try {
      const stuckPort = String((stuck.address() as { port: number }).port);
      await cmd(from.client, 'PL.ZEROS', 'big', String(16 << 20)); // 64 MiB: far more than the buffers hold
      const sending = errorOf(lane, 'PL.SEND', 'big', '0', String(16 << 20), '127.0.0.1', stuckPort, 'd', '0', 'TIMEOUT', '500');
      expect(await cmd(from.client, 'PING')).toBe('PONG');
      expect(await sending).toBe(`ERR peerless: PL.SEND to 127.0.0.1:${stuckPort}: timed out after 500 ms while sending`);
    } finally {
      await lane.close();
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => stuck.close(() => r()));
      await cmd(from.client, 'DEL', 'big');
    }
  });

  it('sends the source whole or says it vanished, when the source is deleted meanwhile', async () => {
    // The source is read at each event-loop turn while the chunks go out: a DEL on another
    // connection lands before, during or after the send (which one is up to the scheduler).
    // Every outcome is whole: the bytes as they were, or a clear error, and the server lives.
    const n = 8 << 20;
    const doomed = randomTensor(n, 11);
    await cmd(from.client, 'PL.SET', 'doomed', bytes(doomed));
    await cmd(to.client, 'PL.ZEROS', 'sink', String(n));
    const lane = from.client.duplicate();
    lane.on('error', () => {});
    await lane.connect();
    try {
      const sending = cmd(lane, 'PL.SEND', 'doomed', '0', String(n), '127.0.0.1', port(to.server), 'sink', '0', ...auth).catch((err: Error) => err);
      await cmd(from.client, 'DEL', 'doomed');
      const outcome = await sending;
      if (outcome instanceof Error) {
        expect(outcome.message).toBe(`ERR peerless: PL.SEND to 127.0.0.1:${port(to.server)}: the source tensor changed or was deleted during the send`);
      } else {
        expect(outcome).toBe(n * 4);
        expect((await getBytes(to.client, 'sink'))!.equals(bytes(doomed))).toBe(true);
      }
      expect(await cmd(from.client, 'PING')).toBe('PONG');
    } finally {
      await lane.close();
    }
  });

  it('is refused inside MULTI and scripts, before it writes anything (it waits for the destination)', async () => {
    await cmd(to.client, 'PL.ZEROS', 'untouched', '10');
    const before = await snapshot(to.client, 'untouched');
    const args = ['PL.SEND', 'src', '0', '10', '127.0.0.1', port(to.server), 'untouched', '0', ...auth];
    const conn = from.client.duplicate();
    conn.on('error', () => {});
    await conn.connect();
    try {
      await conn.sendCommand(['MULTI']);
      await conn.sendCommand(args);
      const replies = await conn.sendCommand(['EXEC']) as unknown[];
      expect(String(replies[0])).toMatch(/PL\.SEND cannot run inside MULTI, a script or another module's call/);
    } finally {
      await conn.close();
    }
    const script = `return redis.pcall(${args.map((a) => `'${a}'`).join(', ')})`;
    expect(await errorOf(from.client, 'EVAL', script, '0')).toMatch(/PL\.SEND cannot run inside MULTI/);
    expect(await snapshot(to.client, 'untouched')).toEqual(before);
  });

  it('is for admins only, and shows in the slow log with its password redacted', async () => {
    await cmd(from.client, 'ACL', 'SETUSER', 'reader', 'on', '>reader-pw', '~*', '-@all', '+@read', '-@dangerous');
    const reader = from.client.duplicate({ username: 'reader', password: 'reader-pw' });
    reader.on('error', () => {});
    await reader.connect();
    try {
      expect(await errorOf(reader, 'PL.SEND', 'src', '0', '10', '127.0.0.1', port(to.server), 'short', '0', ...auth)).toMatch(/^NOPERM/);
    } finally {
      await reader.close();
    }
    await cmd(from.client, 'SLOWLOG', 'RESET');
    await cmd(from.client, 'CONFIG', 'SET', 'slowlog-log-slower-than', '0');
    try {
      await cmd(from.client, 'PL.SEND', 'src', '0', '10', '127.0.0.1', port(to.server), 'short', '0', ...auth);
      // Every argument of every entry as text (bulk replies come back as Buffers).
      const text = (x: unknown): string => (Array.isArray(x) ? x.map(text).join(' ') : Buffer.isBuffer(x) ? x.toString() : String(x));
      const log = text(await cmd(from.client, 'SLOWLOG', 'GET', '100'));
      expect(log).not.toContain(PASSWORD);
      expect(log).toContain('PL.SEND'); // its own time counts among the server's stalls
      expect(log).toContain('(redacted)');
    } finally {
      await cmd(from.client, 'CONFIG', 'SET', 'slowlog-log-slower-than', '10000');
    }
  });
});
