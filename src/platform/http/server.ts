import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { FunctionEvents, FunctionName, FunctionResults } from '../../functions/events.ts';
import { isTransient } from '../../functions/errors.ts';
import { InvalidEvent, isFunctionName, parseEvent, FUNCTION_NAMES } from '../../functions/event-schema.ts';
import { COLD_START_HEADER, FUNCTION_ERROR_HEADER } from './platform.ts';

export type Handle = <N extends FunctionName>(name: N, event: FunctionEvents[N]) => Promise<FunctionResults[N]>;

export interface ServeOptions {
  /** 0 (default) picks a free port. */
  port?: number;
  /** Default 127.0.0.1: exposing the functions beyond loopback is an explicit choice. */
  host?: string;
  /** Largest accepted request body (default 1 MiB: events carry key names, not tensors). */
  maxBodyBytes?: number;
  /** The handler to host; default `handle` of src/functions/handlers.ts, loaded on start. */
  handle?: Handle;
  /**
   * The bearer token every invocation must carry (`Authorization: Bearer <token>`). Without
   * one, anyone who reaches the port runs functions: `peerless function serve` always sets it.
   */
  token?: string;
  /**
   * The Redis servers the functions may connect to, as `host` (any port) or `host:port`;
   * an event naming another is refused (403) before any connection. Default: loopback only.
   */
  allowRedis?: string[];
  /** Serve HTTPS with these PEM files (the certificate chain and its key) instead of HTTP. */
  tls?: { cert: string; key: string };
  /** Told of every answer: the path, its status and how long it took (function serve logs it). */
  onAnswer?: (a: { method: string; path: string; status: number; ms: number }) => void;
}

/** The PEM files' contents; an unreadable one is an error naming it. */
function tlsFiles(t: { cert: string; key: string }): { cert: Buffer; key: Buffer } {
  const read = (what: string, file: string) => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new Error(`function serve: cannot read the TLS ${what} ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
  };
  return { cert: read('certificate', t.cert), key: read('key', t.key) };
}

/** Loopback: the default allow-list, for functions serving peers on the same machine. */
export const LOOPBACK = ['127.0.0.1', 'localhost', '::1'];

/** An allow-list entry: `host`, `host:port`, `[v6]:port`, or a bare IPv6 address. */
function parseEntry(entry: string): { host: string; port?: string } {
  const e = entry.trim().toLowerCase();
  if (e.startsWith('[')) {
    const end = e.indexOf(']');
    return { host: e.slice(1, end), port: e.slice(end + 2) || undefined };
  }
  const parts = e.split(':');
  return parts.length === 2 ? { host: parts[0]!, port: parts[1] } : { host: e };
}

/** Whether `url`'s host (and port) is on `allow`. */
export function redisAllowed(url: string, allow: string[]): boolean {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return false;
  }
  const host = u.hostname.replace(/^\[|\]$/g, '').toLowerCase();
  const port = u.port || '6379';
  return allow.map(parseEntry).some((e) => e.host === host && (e.port === undefined || e.port === port));
}

export interface FunctionServer {
  url: string;
  close(): Promise<void>;
}

/**
 * Hosts the serverless handlers as HTTP functions, the shape an OpenFaaS gateway expects:
 *   POST /function/:name   JSON event in, JSON result out (200)
 *                          400 bad JSON or an invalid event, 404 unknown function,
 *                          413 body too large, 500 the handler failed (with its message and
 *                          x-peerless-function-error: Unhandled, so clients do not retry it),
 *                          503 it failed on a transient error such as a lost Redis connection
 *                          (x-peerless-function-error: Transient: worth a retry)
 *                          401 without the bearer token, 403 for a Redis off the allow-list
 *   GET  /healthz          200 { ok: true, functions }
 * The first invocation of each function in this process answers x-peerless-cold-start: true.
 * Backs `peerless function serve --port N`.
 */
export async function serveFunctions(opts: ServeOptions = {}): Promise<FunctionServer> {
  const handle = opts.handle ?? (await import('../../functions/handlers.ts')).handle;
  const maxBody = opts.maxBodyBytes ?? 1024 * 1024;
  const host = opts.host ?? '127.0.0.1';
  const allow = opts.allowRedis ?? LOOPBACK;
  const bearer = opts.token === undefined ? undefined : Buffer.from(`Bearer ${opts.token}`);
  const warm = new Set<FunctionName>();

  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    if (opts.onAnswer) {
      const t0 = performance.now();
      res.once('finish', () => opts.onAnswer!({ method: req.method ?? '', path: req.url ?? '', status: res.statusCode, ms: performance.now() - t0 }));
    }
    route(req, res).catch((err: unknown) => send(res, 500, { error: (err as Error).message }));
  };
  const server = opts.tls ? createHttpsServer(tlsFiles(opts.tls), onRequest) : createServer(onRequest);

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (path === '/healthz') {
      if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, { error: `${req.method} not allowed on ${path}` });
      return send(res, 200, { ok: true, functions: FUNCTION_NAMES });
    }
    const m = /^\/function\/([^/]+)\/?$/.exec(path);
    if (!m) return send(res, 404, { error: `no route ${path}: POST /function/<${FUNCTION_NAMES.join('|')}>` });
    const name = decodeURIComponent(m[1]);
    if (!isFunctionName(name)) return send(res, 404, { error: `unknown function '${name}' (known: ${FUNCTION_NAMES.join(', ')})` });
    if (req.method !== 'POST') return send(res, 405, { error: `${req.method} not allowed: POST the JSON event` });
    if (bearer !== undefined) {
      const given = Buffer.from(req.headers.authorization ?? '');
      if (given.length !== bearer.length || !timingSafeEqual(given, bearer)) {
        req.resume();
        res.setHeader('www-authenticate', 'Bearer');
        return send(res, 401, { error: 'missing or wrong bearer token (Authorization: Bearer <PEERLESS_FUNCTION_TOKEN>)' });
      }
    }

    const body = await readBody(req, maxBody);
    if (body === null) {
      res.setHeader('connection', 'close');
      return send(res, 413, { error: `request body exceeds ${maxBody} bytes` });
    }
    let json: unknown;
    try {
      json = JSON.parse(body.toString('utf8'));
    } catch (err) {
      return send(res, 400, { error: `invalid JSON: ${(err as Error).message}` });
    }
    let event: FunctionEvents[typeof name];
    try {
      event = parseEvent(name, json);
    } catch (err) {
      return send(res, 400, { error: (err as Error).message });
    }

    const target = (event as { redis: { url: string } }).redis.url;
    if (!redisAllowed(target, allow)) {
      return send(res, 403, { error: `Redis at ${target} is not on this function server's allow-list (${allow.join(', ')}): start it with --allow-redis` });
    }

    const coldStart = !warm.has(name);
    warm.add(name);
    try {
      const result = await handle(name, event);
      res.setHeader(COLD_START_HEADER, String(coldStart));
      send(res, 200, result);
    } catch (err) {
      const e = err as Error;
      // A lost Redis connection may pass on a retry (503, retried); anything else would
      // fail the same way again (500, not retried); a handler's own validation is a 400.
      const transient = isTransient(err);
      res.setHeader(FUNCTION_ERROR_HEADER, transient ? 'Transient' : 'Unhandled');
      send(res, e instanceof InvalidEvent ? 400 : transient ? 503 : 500, { error: e.message ?? String(err), type: e.name });
    }
  }

  await new Promise<void>((ok, fail) => {
    server.once('error', (err: NodeJS.ErrnoException) => fail(new Error(`function server: cannot listen on ${host}:${opts.port ?? 0} (${err.code ?? err.message})`)));
    server.listen(opts.port ?? 0, host, () => ok());
  });
  const { port } = server.address() as AddressInfo;
  const shownHost = host.includes(':') ? `[${host}]` : host;

  return {
    url: `${opts.tls ? 'https' : 'http'}://${shownHost}:${port}`,
    close: () => new Promise<void>((ok) => {
      server.close(() => ok());
      server.closeAllConnections();
    }),
  };
}

/** The whole body, or null as soon as it passes the limit (the rest is not buffered). */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer | null> {
  return new Promise((ok, fail) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) { req.resume(); return ok(null); }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) { req.removeAllListeners('data'); req.resume(); ok(null); return; }
      chunks.push(c);
    });
    req.on('end', () => ok(Buffer.concat(chunks)));
    req.on('error', fail);
  });
}

function send(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) { res.end(); return; }
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
