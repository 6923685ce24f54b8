import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startRedisServer, type RedisServer } from '../../cluster/redis-server.ts';
import { packageFunction } from '../../functions/package.ts';
import { fromBytes } from '../../tensor/bytes.ts';
import { BUFFER_REPLIES, closeRedis, connectRedis } from '../../tensor/redis-client.ts';
import { seedGradient, type SeededGradient } from '../../../test/serverless-offline/gradient-fixture.ts';
import { serverlessCli, startOfflineLambda, type OfflineLambda } from '../../../test/serverless-offline/offline.ts';
import { AwsLambdaPlatform, type AwsLambdaPlatformOptions } from './platform.ts';
import { mayPassAtOnce, mayPassLater } from '../retry.ts';

// The packaged zip (esbuild bundle + wasm) run by serverless-offline's real Invoke API,
// invoked through the AWS SDK with a custom endpoint and dummy credentials.
const cli = serverlessCli();
if (!cli) console.warn('SKIPPED aws-lambda platform tests: serverless@3 is not installed (npm install)');

const dummy: AwsLambdaPlatformOptions = {
  region: 'us-east-1',
  credentials: { accessKeyId: 'offline', secretAccessKey: 'offline' },
};

describe.skipIf(!cli)('AwsLambdaPlatform on serverless-offline (real handler, real Redis)', () => {
  let redis: RedisServer;
  let offline: OfflineLambda;
  let seeded: SeededGradient;
  let outDir: string;
  let platform: AwsLambdaPlatform;

  beforeAll(async () => {
    outDir = mkdtempSync(join(tmpdir(), 'peerless-pkg-'));
    const [r, pkg] = await Promise.all([startRedisServer(), packageFunction(outDir)]);
    redis = r;
    offline = await startOfflineLambda({ zipPath: pkg.path });
    seeded = await seedGradient(redis.url);
    platform = new AwsLambdaPlatform({ ...dummy, endpoint: offline.endpoint });
  });
  afterAll(async () => {
    await platform?.close();
    await offline?.stop();
    await redis?.stop();
    if (outDir) rmSync(outDir, { recursive: true, force: true });
  });

  async function readFloats(key: string): Promise<Float32Array> {
    const c = await connectRedis({ url: redis.url });
    try {
      const v = (await c.withTypeMapping(BUFFER_REPLIES.typeMapping).get(key)) as Buffer | null;
      if (!v) throw new Error(`no key ${key}`);
      return fromBytes(v, key);
    } finally {
      await closeRedis(c);
    }
  }

  it('runs the gradient in the bundle and the average lands in Redis', async () => {
    const r = await platform.invoke('gradient', seeded.event);
    expect(r).toMatchObject({ samples: 16, count: 1, done: true });
    expect(r.loss).toBeCloseTo(seeded.loss, 4);
    const avg = await readFloats(seeded.event.avgKey);
    expect(avg.length).toBe(seeded.layout.size);
    let diff = 0;
    for (let i = 0; i < avg.length; i++) diff = Math.max(diff, Math.abs(avg[i] - seeded.gradient[i]));
    expect(diff).toBeLessThan(1e-5);
    expect(platform.metrics()).toMatchObject({ invocations: 1, failures: 0, coldStarts: 1, warmStarts: 0 });
  });

  it('reports warm starts and the memory the function was given', async () => {
    const e = seeded.event;
    await platform.invoke('gradient', { ...e, sumKey: 'other:gsum', avgKey: 'other:gavg' });
    const m = platform.metrics();
    expect(m).toMatchObject({ invocations: 2, coldStarts: 1, warmStarts: 1 });
    // 1536 MB from serverless.yml, reported by the function: cost = GB-s at 1.5 GB + requests.
    const expected = (m.billedMs / 1000) * 1.5 * 0.0000166667 + 2 * 0.2e-6;
    expect(m.estimatedCostUsd).toBeCloseTo(expected, 9);
  });

  it('runs a round of batches in parallel: each counted once, the last writes the mean', async () => {
    const round = await seedGradient(redis.url, { batches: 3, prefix: 'par' });
    const p = new AwsLambdaPlatform({ ...dummy, endpoint: offline.endpoint });
    const results = await Promise.all(round.events.map((e) => p.invoke('gradient', e)));
    expect(results.map((r) => r.count).sort()).toEqual([1, 2, 3]);
    expect(results.filter((r) => r.done)).toHaveLength(1);
    const avg = await readFloats(round.event.avgKey);
    let diff = 0;
    for (let i = 0; i < avg.length; i++) diff = Math.max(diff, Math.abs(avg[i] - round.gradient[i]));
    expect(diff).toBeLessThan(1e-5);
    expect(p.metrics()).toMatchObject({ invocations: 3, failures: 0 });
  });

  it('turns a handler failure into one line naming the function', async () => {
    const p = new AwsLambdaPlatform({ ...dummy, endpoint: offline.endpoint });
    const err = await p.invoke('gradient', { ...seeded.event, layoutHash: 'deadbeefdeadbeef', contributionId: 'r1:b9' }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/^aws-lambda: function peerless-gradient failed: .*deadbeefdeadbeef/);
    expect((err as Error).message).not.toContain('\n');
    expect(p.metrics()).toMatchObject({ failures: 1, retries: 0 });
  });

  it('retries a function that lost its Redis, then says so in one line', async () => {
    const port = await freePort();
    const p = new AwsLambdaPlatform({ ...dummy, endpoint: offline.endpoint, attempts: 2 });
    const gone = { ...seeded.event, redis: { url: `redis://127.0.0.1:${port}` } };
    await expect(p.invoke('gradient', gone)).rejects.toThrow(
      new RegExp(`^aws-lambda: function peerless-gradient failed after 2 attempts: transient: .*cannot reach Redis at redis://127\\.0\\.0\\.1:${port}`));
    expect(p.metrics()).toMatchObject({ failures: 1, retries: 1 });
  });

  it('names a function that is not deployed', async () => {
    const p = new AwsLambdaPlatform({ ...dummy, endpoint: offline.endpoint, functionNames: { gradient: 'peerless-missing' } });
    await expect(p.invoke('gradient', seeded.event)).rejects.toThrow(/^aws-lambda: function peerless-missing not found at http:\/\/127\.0\.0\.1:\d+/);
  });

  it('names the endpoint it cannot reach, after retrying', async () => {
    const port = await freePort();
    const p = new AwsLambdaPlatform({ ...dummy, endpoint: `http://127.0.0.1:${port}`, attempts: 2 });
    await expect(p.invoke('gradient', seeded.event)).rejects.toThrow(`aws-lambda: cannot reach http://127.0.0.1:${port} (ECONNREFUSED) after 2 attempts`);
    expect(p.metrics()).toMatchObject({ failures: 1, retries: 1 });
    await p.close();
  });
});

// Lambda over its concurrency limit, as its Invoke API answers (429 with the error type in a
// header): a plain HTTP server stands in for it, which is all this case needs.
describe('AwsLambdaPlatform throttled', () => {
  it('retries after a backoff, then says the call may pass later but not at once', async () => {
    let hits = 0;
    const lambda: Server = createServer((_req, res) => {
      hits++;
      res.writeHead(429, { 'content-type': 'application/json', 'x-amzn-errortype': 'TooManyRequestsException' })
        .end(JSON.stringify({ message: 'Rate Exceeded.', Reason: 'ReservedFunctionConcurrentInvocationLimitExceeded' }));
    });
    await new Promise<void>((ok) => lambda.listen(0, '127.0.0.1', ok));
    const p = new AwsLambdaPlatform({ ...dummy, endpoint: `http://127.0.0.1:${(lambda.address() as AddressInfo).port}`, attempts: 2 });
    try {
      const err = await p.invoke('gradient', {} as never).catch((e: unknown) => e);
      expect(String(err)).toMatch(/TooManyRequests|Rate Exceeded/);
      expect([mayPassLater(err), mayPassAtOnce(err)]).toEqual([true, false]);
      expect(hits).toBeGreaterThanOrEqual(2);
    } finally {
      await p.close();
      lambda.closeAllConnections();
      await new Promise((ok) => lambda.close(ok));
    }
  });
});
