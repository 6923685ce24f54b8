/**
 * Puts what one gradient function needs into a real Redis: the small CNN's layout and
 * seeded params, a synthetic batch; and computes the same gradient in this process, so a
 * test can check the average a remote function wrote bit for bit (same wasm kernels).
 * Shared by the HTTP and AWS Lambda platform tests.
 */
import type { GradientEvent } from '../../src/functions/events.ts';
import { initBackend } from '../../src/model/backend.ts';
import { getFlatParams, getLayout, type Layout } from '../../src/model/flat.ts';
import { computeGradient } from '../../src/model/gradient.ts';
import { buildModel, IMAGE_SIZE } from '../../src/model/zoo.ts';
import { toBytes } from '../../src/tensor/bytes.ts';
import { closeRedis, connectRedis } from '../../src/tensor/redis-client.ts';

export interface SeededGradient {
  event: GradientEvent;
  layout: Layout;
  /** The gradient of the batch computed locally: what the average must equal (expected 1). */
  gradient: Float32Array;
  loss: number;
}

/** Deterministic bytes: the same batch on every run. */
function bytes(n: number, seed: number, mod: number): Buffer {
  const out = Buffer.alloc(n);
  let a = seed >>> 0;
  for (let i = 0; i < n; i++) {
    a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
    out[i] = (a >>> 24) % mod;
  }
  return out;
}

export async function seedGradient(redisUrl: string, opts: { samples?: number; prefix?: string; expected?: number } = {}): Promise<SeededGradient> {
  const n = opts.samples ?? 16;
  const p = opts.prefix ?? 't';
  await initBackend('wasm');
  const model = buildModel('cnn', 1, 7);
  const layout = getLayout(model);
  const params = getFlatParams(model);
  const images = bytes(n * IMAGE_SIZE * IMAGE_SIZE, 1, 256);
  const labels = bytes(n, 2, 10);

  const event: GradientEvent = {
    redis: { url: redisUrl },
    model: { name: 'cnn', width: 1 },
    layoutHash: layout.hash,
    layoutKey: `${p}:layout`,
    paramsKey: `${p}:params`,
    batchImagesKey: `${p}:batch:0:images`,
    batchLabelsKey: `${p}:batch:0:labels`,
    sumKey: `${p}:r:1:gsum`,
    avgKey: `${p}:r:1:gavg`,
    contributionId: 'r1:b0',
    expected: opts.expected ?? 1,
  };
  const redis = await connectRedis({ url: redisUrl });
  try {
    // The peer keeps the layout hash under layoutKey; functions check it against their model.
    await redis.set(event.layoutKey, layout.hash);
    await redis.set(event.paramsKey, toBytes(params));
    await redis.set(event.batchImagesKey, images);
    await redis.set(event.batchLabelsKey, labels);
  } finally {
    await closeRedis(redis);
  }
  const local = computeGradient(model, new Uint8Array(images), new Uint8Array(labels));
  model.dispose();
  return { event, layout, gradient: local.gradient, loss: local.loss };
}
