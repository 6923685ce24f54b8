import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../cluster/redis-server.ts';
import { makeLocalTls } from '../../cluster/tls.ts';
import { TLS_CA_ENV } from '../../tensor/redis-client.ts';
import { mayPassAtOnce, mayPassLater } from '../retry.ts';
import type { FunctionEvents, FunctionName, GradientEvent, GradientResult } from '../../functions/events.ts';
import { HttpPlatform } from './platform.ts';
import { redisAllowed, serveFunctions, type FunctionServer, type Handle } from './server.ts';

// Plumbing of the HTTP platform against the real server with a stand-in handler; the real
// handler on a real Redis is in gradient-over-http.spec.ts.
const event: GradientEvent = {
  redis: { url: 'redis://127.0.0.1:1' }, model: { name: 'cnn' }, layoutHash: 'h', layoutKey: 'l',
  paramsKey: 'p', batchImagesKey: 'bi', batchLabelsKey: 'bl', sumKey: 's', avgKey: 'a',
  contributionId: 'b0', expected: 1,
};
const result: GradientResult = { loss: 2.3, accuracy: 0.1, samples: 8, count: 1, done: true, timings: { loadMs: 1, computeMs: 2, pushMs: 3 } };

let calls = 0;
const flaked = new Set<string>();
const stub: Handle = async <N extends FunctionName>(name: N, ev: FunctionEvents[N]) => {
  calls++;
  const id = (ev as GradientEvent).contributionId;
  if (id === 'explode') throw new Error('layout hash mismatch: expected h, found k');
  // Fails once per id as a handler does when the peer's Redis is briefly away.
  if (id.startsWith('flaky') && !flaked.has(id)) { flaked.add(id); throw new Error('cannot reach Redis at redis://127.0.0.1:1: connect ECONNREFUSED'); }
  return result as never;
};

let server: FunctionServer;
beforeAll(async () => { server = await serveFunctions({ handle: stub, maxBodyBytes: 4096 }); });
afterAll(async () => { await server?.close(); });

describe('HttpPlatform + serveFunctions', () => {
  it('invokes over HTTP, reports the first call per function as cold, meters every call', async () => {
    const p = new HttpPlatform({ url: server.url });
    expect(await p.invoke('gradient', event)).toEqual(result);
    expect(await p.invoke('gradient', { ...event, contributionId: 'b1' })).toEqual(result);
    const m = p.metrics();
    expect(m).toMatchObject({ invocations: 2, failures: 0, retries: 0, coldStarts: 1, warmStarts: 1 });
    expect(m.estimatedCostUsd).toBeGreaterThan(0);
    await p.close();
  });

  it('with a token, refuses callers without it (401, not retried), and serves those with it', async () => {
    const guarded = await serveFunctions({ handle: stub, token: 't0k3n' });
    try {
      const before = calls;
      const none = new HttpPlatform({ url: guarded.url, token: '' });
      await expect(none.invoke('gradient', event)).rejects.toThrow(/answered 401: missing or wrong bearer token/);
      const wrong = new HttpPlatform({ url: guarded.url, token: 't0k3m' });
      await expect(wrong.invoke('gradient', event)).rejects.toThrow(/answered 401/);
      expect(wrong.metrics().retries).toBe(0);
      expect(calls).toBe(before); // the handler never ran
      expect(await new HttpPlatform({ url: guarded.url, token: 't0k3n' }).invoke('gradient', event)).toEqual(result);
    } finally {
      await guarded.close();
    }
  });

  it('serves HTTPS: callers trusting the CA (PEERLESS_TLS_CA) are served; plain HTTP and an unknown CA are refused in one line', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'peerless-https-'));
    const tls = makeLocalTls(dir);
    const secure = await serveFunctions({ handle: stub, token: 't', tls: { cert: tls.cert, key: tls.key } });
    try {
      expect(secure.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      const stranger = new HttpPlatform({ url: secure.url, token: 't', attempts: 1 });
      await expect(stranger.invoke('gradient', event)).rejects.toThrow(/cannot reach https:.*(self-signed|unable to verify|SELF_SIGNED|UNABLE_TO)/i);
      await stranger.close();
      const plain = new HttpPlatform({ url: secure.url.replace('https:', 'http:'), token: 't', attempts: 1 });
      await expect(plain.invoke('gradient', event)).rejects.toThrow(/http platform: .*(reset|closed|socket|answered 400)/i);
      await plain.close();
      process.env[TLS_CA_ENV] = tls.ca;
      const trusting = new HttpPlatform({ url: secure.url, token: 't' });
      expect(await trusting.invoke('gradient', event)).toEqual(result);
      await trusting.close();
    } finally {
      delete process.env[TLS_CA_ENV];
      await secure.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses an event naming a Redis off the allow-list (403), before any connection', async () => {
    const before = calls;
    const p = new HttpPlatform({ url: server.url });
    await expect(p.invoke('gradient', { ...event, redis: { url: 'redis://10.1.2.3:6379' } }))
      .rejects.toThrow(/answered 403: Redis at redis:\/\/10\.1\.2\.3:6379 is not on this function server's allow-list \(127\.0\.0\.1, localhost, ::1\)/);
    expect(calls).toBe(before);
    expect(redisAllowed('redis://10.0.0.1:6379', ['10.0.0.1:6379'])).toBe(true);
    expect(redisAllowed('redis://10.0.0.1:6380', ['10.0.0.1:6379'])).toBe(false);
    expect(redisAllowed('redis://10.0.0.1', ['10.0.0.1:6379'])).toBe(true); // the default port
    expect(redisAllowed('redis://[::1]:7000', ['::1'])).toBe(true);
    expect(redisAllowed('redis://[::1]:7000', ['[::1]:7001'])).toBe(false);
    expect(redisAllowed('not a url', ['127.0.0.1'])).toBe(false);
  });

  it('answers /healthz', async () => {
    const res = await fetch(`${server.url}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ok: true, functions: ['gradient', 'evaluate'] });
  });

  it('gives 404 for an unknown function, 400 for bad JSON and invalid events, 413 for big bodies', async () => {
    const post = (path: string, body: string) => fetch(`${server.url}${path}`, { method: 'POST', body });
    const r404 = await post('/function/train', '{}');
    expect(r404.status).toBe(404);
    expect((await r404.json() as { error: string }).error).toMatch(/unknown function 'train'/);
    const r400 = await post('/function/gradient', '{not json');
    expect(r400.status).toBe(400);
    expect((await r400.json() as { error: string }).error).toMatch(/invalid JSON/);
    const invalid = await post('/function/gradient', JSON.stringify({ ...event, expected: 0 }));
    expect(invalid.status).toBe(400);
    expect((await invalid.json() as { error: string }).error).toMatch(/invalid gradient event: expected/);
    const big = await post('/function/gradient', 'x'.repeat(5000));
    expect(big.status).toBe(413);
  });

  it('surfaces a handler failure as one line with its message, without retrying it', async () => {
    const before = calls;
    const p = new HttpPlatform({ url: server.url, attempts: 3 });
    await expect(p.invoke('gradient', { ...event, contributionId: 'explode' }))
      .rejects.toThrow(/^http platform: http:\/\/127\.0\.0\.1:\d+\/function\/gradient answered 500: layout hash mismatch: expected h, found k$/);
    expect(calls - before).toBe(1);
    expect(p.metrics()).toMatchObject({ invocations: 1, failures: 1, retries: 0 });
  });

  it('retries a handler failure the server marks transient (503)', async () => {
    const p = new HttpPlatform({ url: server.url });
    expect(await p.invoke('gradient', { ...event, contributionId: 'flaky-1' })).toEqual(result);
    expect(p.metrics()).toMatchObject({ invocations: 1, failures: 0, retries: 1 });
    const res = await fetch(`${server.url}/function/gradient`, { method: 'POST', body: JSON.stringify({ ...event, contributionId: 'flaky-2' }) });
    expect(res.status).toBe(503);
    expect(res.headers.get('x-peerless-function-error')).toBe('Transient');
  });

  it('passes the server 404 through as an error naming the URL', async () => {
    const p = new HttpPlatform({ url: server.url, functionNames: { gradient: 'nope' } });
    await expect(p.invoke('gradient', event)).rejects.toThrow(/\/function\/nope answered 404: unknown function 'nope'/);
  });

  it('names the endpoint it cannot reach', async () => {
    const port = await freePort();
    const p = new HttpPlatform({ url: `http://127.0.0.1:${port}`, attempts: 2 });
    await expect(p.invoke('gradient', event))
      .rejects.toThrow(`http platform: cannot reach http://127.0.0.1:${port}/function/gradient (ECONNREFUSED) after 2 attempts`);
    expect(p.metrics()).toMatchObject({ failures: 1, retries: 1 });
  });

  it('retries a gateway 503 and a 429, times out a silent one, and says which may pass at once; URL templates place the name', async () => {
    let hits = 0;
    const gateway: Server = createServer((req, res) => {
      hits++;
      if (req.url === '/slow/gradient') return; // never answers
      if (req.url === '/busy/gradient') { res.writeHead(429).end('{"message":"slow down"}'); return; }
      if (req.url === '/down/gradient') { res.writeHead(503).end('upstream down'); return; }
      if (hits === 1) { res.writeHead(503).end('upstream busy'); return; }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(result));
    });
    await new Promise<void>((ok) => gateway.listen(0, '127.0.0.1', ok));
    const base = `http://127.0.0.1:${(gateway.address() as AddressInfo).port}`;
    try {
      const p = new HttpPlatform({ url: `${base}/fn/{name}?blocking=true`, attempts: 3 });
      expect(p.urlFor('gradient')).toBe(`${base}/fn/gradient?blocking=true`);
      expect(await p.invoke('gradient', event)).toEqual(result);
      expect(p.metrics()).toMatchObject({ invocations: 1, retries: 1, coldStarts: 0, warmStarts: 1 });

      const slow = new HttpPlatform({ url: `${base}/slow/{name}`, timeoutMs: 200 });
      await expect(slow.invoke('gradient', event)).rejects.toThrow(/did not answer within 200 ms/);

      // A gateway over its limit (429) is retried after a backoff, and when it still refuses,
      // the error says the call may pass later but not at once (no hedged copy adds to it).
      const throttled = new HttpPlatform({ url: `${base}/busy/{name}`, attempts: 2 });
      const err = await throttled.invoke('gradient', event).catch((e: unknown) => e);
      expect(String(err)).toMatch(/answered 429: slow down after 2 attempts/);
      expect([mayPassLater(err), mayPassAtOnce(err)]).toEqual([true, false]);
      // A 503 may pass at once.
      const busy = new HttpPlatform({ url: `${base}/down/{name}`, attempts: 1 });
      const down = await busy.invoke('gradient', event).catch((e: unknown) => e);
      expect([mayPassLater(down), mayPassAtOnce(down)]).toEqual([true, true]);
    } finally {
      gateway.closeAllConnections();
      await new Promise((ok) => gateway.close(ok));
    }
  });
});
