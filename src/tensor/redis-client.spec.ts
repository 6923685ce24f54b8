import { createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { closeRedis, connectRedis } from './redis-client.ts';

/**
 * A stand-in for a redis-server that is still reading its data from disk: it answers every
 * PING with Redis's LOADING error until `loadingPings` have come, then PONG; any other command
 * gets OK. (A real server's loading window is too short to hit on purpose.)
 */
function loadingServer(loadingPings: number): Promise<{ server: Server; url: string; pings: () => number }> {
  let pings = 0;
  const sockets: Socket[] = [];
  const server = createServer((s) => {
    sockets.push(s);
    let buf = '';
    s.on('data', (d) => {
      buf += d.toString('latin1');
      // One RESP array per command: count its lines (*n, then $len and the value per argument).
      for (;;) {
        const m = /^\*(\d+)\r\n/.exec(buf);
        if (!m) return;
        const lines = buf.split('\r\n');
        const need = 1 + 2 * Number(m[1]);
        if (lines.length <= need) return;
        const name = lines[2].toUpperCase();
        buf = lines.slice(need).join('\r\n');
        if (name === 'PING') s.write(++pings <= loadingPings ? '-LOADING Redis is loading the dataset in memory\r\n' : '+PONG\r\n');
        else s.write('+OK\r\n');
      }
    });
  });
  const close = server.close.bind(server);
  server.close = (cb) => { sockets.forEach((s) => s.destroy()); return close(cb); };
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => {
    const { port } = server.address() as { port: number };
    resolve({ server, url: `redis://127.0.0.1:${port}`, pings: () => pings });
  }));
}

let open: Server | undefined;
afterEach(async () => {
  await new Promise<void>((r) => (open ? open.close(() => r()) : r()));
  open = undefined;
});

describe('connecting to a Redis', () => {
  it('waits for a server still loading its data, then connects', async () => {
    const s = await loadingServer(5);
    open = s.server;
    const client = await connectRedis({ url: s.url });
    expect(s.pings()).toBe(6); // five LOADING answers, then PONG
    await closeRedis(client);
  });

  it('gives up on something that accepts the connection and never answers, in one line', async () => {
    const sockets: Socket[] = [];
    const silent = createServer((sock) => { sockets.push(sock); });
    const close = silent.close.bind(silent);
    silent.close = (cb) => { sockets.forEach((x) => x.destroy()); return close(cb); };
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    open = silent;
    const url = `redis://127.0.0.1:${(silent.address() as { port: number }).port}`;
    // It waited forever before: the client's handshake had no bound.
    await expect(connectRedis({ url }, { connectTimeoutMs: 500, failFast: true })).rejects.toThrow(`cannot reach Redis at ${url}: no answer within 500 ms`);
  });
});
