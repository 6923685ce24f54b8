import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { mulberry32 } from '../src/data/random.ts';
import { HttpPlatform } from '../src/platform/http/platform.ts';

/** The ways a call can fail between a peer and its functions. */
export const FAULTS = ['500', 'reset', 'delay', 'reset-after'] as const;
export type Fault = (typeof FAULTS)[number];

export interface FunctionProxy {
  url: string;
  /** Faults injected so far, by kind, and calls seen. */
  injected: Record<Fault, number>;
  calls: number;
  close(): Promise<void>;
}

/**
 * A seeded HTTP proxy in front of a function server that fails a fraction of the calls:
 * - `500`: a gateway error, the function never ran;
 * - `reset`: the connection is cut before the function runs;
 * - `delay`: the call is held `delayMs` (past the caller's timeout), then forwarded, so the
 *   function runs after the caller gave up on it;
 * - `reset-after`: the function runs, and its answer is cut off.
 * Whether call i fails is the seeded PRNG's i-th draw; the kinds take turns, so every kind
 * shows up once four faults have been drawn. `kinds` narrows them, and the first `passFirst`
 * calls always pass (draws start after them). With `repeatsPass`, a call whose body was seen
 * before (a retry, a hedged copy) always passes: the fault was the instance's, not the
 * call's. Loopback only.
 */
export interface ProxyOptions { seed: number; fraction: number; delayMs: number; kinds?: readonly Fault[]; passFirst?: number; repeatsPass?: boolean }

export async function startFunctionProxy(target: string, o: ProxyOptions): Promise<FunctionProxy> {
  const kinds = o.kinds ?? FAULTS;
  const seen = new Set<string>();
  const rand = mulberry32(o.seed);
  const injected: Record<Fault, number> = { '500': 0, reset: 0, delay: 0, 'reset-after': 0 };
  let faults = 0;
  const state = { calls: 0 };
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();

  const forward = (req: IncomingMessage, body: Buffer, onAnswer: (status: number, headers: IncomingMessage['headers'], data: Buffer) => void, onError: () => void) => {
    const up = request(new URL(req.url ?? '/', target), { method: req.method, headers: req.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => onAnswer(res.statusCode ?? 502, res.headers, Buffer.concat(chunks)));
    });
    up.on('error', onError);
    up.end(body);
  };

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      state.calls++;
      const body = Buffer.concat(chunks);
      const text = o.repeatsPass ? body.toString('latin1') : '';
      const repeat = o.repeatsPass === true && seen.has(text);
      if (o.repeatsPass) seen.add(text);
      const fault: Fault | null = !repeat && state.calls > (o.passFirst ?? 0) && rand() < o.fraction ? kinds[faults++ % kinds.length]! : null;
      if (fault) injected[fault]++;
      const answer = (status: number, headers: IncomingMessage['headers'], data: Buffer) => {
        if (fault === 'reset-after') { req.socket.destroy(); return; }
        if (res.destroyed) return;
        res.writeHead(status, headers);
        res.end(data);
      };
      const fail = () => { if (!res.destroyed) { res.writeHead(502); res.end('{"error":"proxy: function server unreachable"}'); } };
      switch (fault) {
        case '500':
          res.writeHead(500, { 'content-type': 'application/json' });
          res.end('{"error":"injected gateway error"}');
          return;
        case 'reset':
          req.socket.destroy();
          return;
        case 'delay': {
          const t = setTimeout(() => { timers.delete(t); forward(req, body, answer, fail); }, o.delayMs);
          timers.add(t);
          return;
        }
        default:
          forward(req, body, answer, fail);
      }
    });
  });
  server.on('connection', (s: Socket) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    injected,
    get calls() { return state.calls; },
    async close() {
      for (const t of timers) clearTimeout(t);
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/**
 * The functions at `target` behind a failing proxy, as a peer calls them: an HTTP platform
 * making one attempt per call (the peer's own retries until the function deadline are what
 * a fault test measures), timing a call out after `timeoutMs`.
 */
export async function behindFaultyProxy(
  target: string, o: ProxyOptions & { timeoutMs: number; elastic?: boolean },
): Promise<{ proxy: FunctionProxy; platform: HttpPlatform; close(): Promise<void> }> {
  const proxy = await startFunctionProxy(target, o);
  const platform = new HttpPlatform({ url: proxy.url, timeoutMs: o.timeoutMs, attempts: 1, elastic: o.elastic });
  return { proxy, platform, close: async () => { await platform.close(); await proxy.close(); } };
}
