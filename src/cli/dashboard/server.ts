import { createReadStream } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { RoundPoint } from '../../peer/round-log.ts';
import type { PeerStatus } from '../../peer/types.ts';

/**
 * `train --dashboard`: a web page that shows the network while it trains. The CLI serves the
 * page's static files (no build step, no network: echarts comes from node_modules) and streams
 * what the peers report as server-sent events. A page that connects late first gets the run
 * so far (every peer's status, its round history, the log), then the events as they come.
 */
export interface Dashboard {
  readonly url: string;
  status(s: PeerStatus): void;
  round(p: RoundPoint): void;
  log(msg: string): void;
  plan(totalRounds: number): void;
  /** The run ended: how (the summary's first line), and whether it failed. */
  finish(how: string, failed: boolean): void;
  close(): Promise<void>;
}

/** Rounds kept for a page that connects late (per run; older ones are dropped). */
const HISTORY = 20_000;
/** Log lines kept for a late page. */
const LOG_LINES = 500;

const PAGE_DIR = fileURLToPath(new URL('./page/', import.meta.url));
const ECHARTS = createRequire(import.meta.url).resolve('echarts/dist/echarts.min.js');
const FILES: Record<string, { path: string; type: string }> = {
  '/': { path: `${PAGE_DIR}index.html`, type: 'text/html; charset=utf-8' },
  '/app.js': { path: `${PAGE_DIR}app.js`, type: 'text/javascript; charset=utf-8' },
  '/echarts.min.js': { path: ECHARTS, type: 'text/javascript; charset=utf-8' },
};

/**
 * Serves the dashboard on `host:port` (loopback by default; port 0 picks a free one). A port
 * in use is a one-line error naming it.
 */
export async function startDashboard(o: { port?: number; host?: string } = {}): Promise<Dashboard> {
  const host = o.host ?? '127.0.0.1';
  const statuses = new Map<string, PeerStatus>();
  const rounds: RoundPoint[] = [];
  const logs: { at: number; msg: string }[] = [];
  let totalRounds: number | null = null;
  let finished: { how: string; failed: boolean } | null = null;
  const clients = new Set<ServerResponse>();

  const send = (res: ServerResponse, event: string, data: unknown) => res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  const broadcast = (event: string, data: unknown) => { for (const c of clients) send(c, event, data); };

  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET') {
      res.writeHead(405).end();
      return;
    }
    if (path === '/events') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
      send(res, 'snapshot', { statuses: [...statuses.values()], rounds, logs, totalRounds, finished });
      clients.add(res);
      req.on('close', () => clients.delete(res));
      return;
    }
    const file = FILES[path];
    if (!file) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`no ${path} here: the dashboard is at /\n`);
      return;
    }
    res.writeHead(200, { 'content-type': file.type, 'cache-control': 'no-cache' });
    createReadStream(file.path).pipe(res);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(new Error(err.code === 'EADDRINUSE'
      ? `--dashboard: port ${o.port} on ${host} is in use; pick another (--dashboard PORT) or 0 for any free port`
      : `--dashboard: cannot listen on ${host}:${o.port ?? 0} (${err.code ?? err.message})`)));
    server.listen(o.port ?? 0, host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}/`,
    status(s) {
      statuses.set(s.id, s);
      broadcast('status', s);
    },
    round(p) {
      rounds.push(p);
      if (rounds.length > HISTORY) rounds.splice(0, rounds.length - HISTORY);
      broadcast('round', p);
    },
    log(msg) {
      const line = { at: Date.now(), msg };
      logs.push(line);
      if (logs.length > LOG_LINES) logs.shift();
      broadcast('log', line);
    },
    plan(n) {
      totalRounds = n;
      broadcast('plan', { totalRounds: n });
    },
    finish(how, failed) {
      finished = { how, failed };
      broadcast('finish', finished);
    },
    async close() {
      for (const c of clients) c.end();
      clients.clear();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}
