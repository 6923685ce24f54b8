import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedisServer, type RedisServer } from '../../cluster/redis-server.ts';
import { fromBytes } from '../../tensor/bytes.ts';
import { BUFFER_REPLIES, closeRedis, connectRedis } from '../../tensor/redis-client.ts';
import { seedGradient, type SeededGradient } from '../../../test/serverless-offline/gradient-fixture.ts';
import { HttpPlatform } from './platform.ts';
import { serveFunctions, type FunctionServer } from './server.ts';

// The REAL handler behind `peerless function serve`, on a REAL redis-server with the module.
let redis: RedisServer;
let server: FunctionServer;
let seeded: SeededGradient;

beforeAll(async () => {
  redis = await startRedisServer();
  server = await serveFunctions();
  seeded = await seedGradient(redis.url);
});
afterAll(async () => {
  await server?.close();
  await redis?.stop();
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

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe('gradient over HTTP (real handler, real Redis)', () => {
  it('computes the batch gradient and the last arrival writes the average', async () => {
    const p = new HttpPlatform({ url: server.url });
    const r = await p.invoke('gradient', seeded.event);
    expect(r).toMatchObject({ samples: 16, count: 1, done: true });
    expect(r.loss).toBeCloseTo(seeded.loss, 4);
    const avg = await readFloats(seeded.event.avgKey);
    expect(avg.length).toBe(seeded.layout.size);
    expect(maxAbsDiff(avg, seeded.gradient)).toBeLessThan(1e-5);
    expect(p.metrics()).toMatchObject({ invocations: 1, failures: 0, coldStarts: 1 });
  });

  it('counts a retried batch once', async () => {
    const p = new HttpPlatform({ url: server.url });
    const r = await p.invoke('gradient', seeded.event);
    expect(r.count).toBe(1);
    expect(maxAbsDiff(await readFloats(seeded.event.avgKey), seeded.gradient)).toBeLessThan(1e-5);
    expect(p.metrics().warmStarts).toBe(1);
  });

  it('evaluates held-out samples', async () => {
    const p = new HttpPlatform({ url: server.url });
    const e = seeded.event;
    const r = await p.invoke('evaluate', {
      redis: e.redis, model: e.model, layoutHash: e.layoutHash, layoutKey: e.layoutKey, paramsKey: e.paramsKey,
      imagesKey: e.batchImagesKey, labelsKey: e.batchLabelsKey, start: 0, count: 16,
    });
    expect(r.samples).toBe(16);
    // Mean loss; the small CNN has no BN or dropout, so inference loss equals training loss.
    expect(r.loss).toBeCloseTo(seeded.loss, 4);
  });

  it('reports a wrong layout hash as the handler failure it is', async () => {
    const p = new HttpPlatform({ url: server.url });
    await expect(p.invoke('gradient', { ...seeded.event, layoutHash: 'deadbeefdeadbeef', contributionId: 'r1:b9' }))
      .rejects.toThrow(/answered (400|500): .*deadbeefdeadbeef/);
    expect(p.metrics()).toMatchObject({ failures: 1, retries: 0 });
  });
});
