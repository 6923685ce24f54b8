/**
 * Puts what gradient functions need into a real Redis: the small CNN's layout hash and
 * seeded params, synthetic batches; and computes the same gradients in this process, so a
 * test can check the average a remote function wrote (same wasm kernels).
 * Shared by the HTTP and AWS Lambda platform tests.
 */
import type { GradientEvent } from '../../src/functions/events.ts';
import { initBackend } from '../../src/model/backend.ts';
import { getFlatParams, getLayout, type Layout } from '../../src/model/flat.ts';
import { computeGradient } from '../../src/model/gradient.ts';
import { buildModel } from '../../src/model/zoo.ts';
import { inputSize, MNIST_SPEC } from '../../src/data/spec.ts';
import { toBytes } from '../../src/tensor/bytes.ts';
import { closeRedis, connectRedis } from '../../src/tensor/redis-client.ts';

export interface SeededGradient {
  /** The first batch's event; `events` has one per batch, all into the same sum/avg keys. */
  event: GradientEvent;
  events: GradientEvent[];
  layout: Layout;
  /** The mean of the batches' gradients computed locally: what the average must equal. */
  gradient: Float32Array;
  /** The first batch's loss. */
  loss: number;
}

/** Deterministic bytes: the same batches on every run. */
function bytes(n: number, seed: number, mod: number): Buffer {
  const out = Buffer.alloc(n);
  let a = seed >>> 0;
  for (let i = 0; i < n; i++) {
    a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
    out[i] = (a >>> 24) % mod;
  }
  return out;
}

export async function seedGradient(
  redisUrl: string,
  opts: { samples?: number; prefix?: string; batches?: number } = {},
): Promise<SeededGradient> {
  const n = opts.samples ?? 16;
  const p = opts.prefix ?? 't';
  const batches = opts.batches ?? 1;
  await initBackend('wasm');
  const model = buildModel('cnn', 1, 7);
  const layout = getLayout(model);
  const params = getFlatParams(model);

  const redis = await connectRedis({ url: redisUrl });
  const events: GradientEvent[] = [];
  const mean = new Float32Array(layout.size);
  let loss = 0;
  try {
    // The peer keeps the layout hash under layoutKey; functions check it against their model.
    await redis.set(`${p}:layout`, layout.hash);
    await redis.set(`${p}:params`, toBytes(params));
    for (let b = 0; b < batches; b++) {
      const images = bytes(n * inputSize(MNIST_SPEC), 1 + 2 * b, 256);
      const labels = bytes(n, 2 + 2 * b, 10);
      const event: GradientEvent = {
        redis: { url: redisUrl },
        model: { name: 'cnn', width: 1 },
        layoutHash: layout.hash,
        layoutKey: `${p}:layout`,
        paramsKey: `${p}:params`,
        batchImagesKey: `${p}:batch:${b}:images`,
        batchLabelsKey: `${p}:batch:${b}:labels`,
        sumKey: `${p}:r:1:gsum`,
        avgKey: `${p}:r:1:gavg`,
        contributionId: `r1:b${b}`,
        expected: batches,
      };
      await redis.set(event.batchImagesKey, images);
      await redis.set(event.batchLabelsKey, labels);
      events.push(event);
      const local = computeGradient(model, new Uint8Array(images), new Uint8Array(labels));
      if (b === 0) loss = local.loss;
      for (let i = 0; i < mean.length; i++) mean[i] += local.gradient[i] / batches;
    }
  } finally {
    await closeRedis(redis);
  }
  model.dispose();
  return { event: events[0], events, layout, gradient: mean, loss };
}
