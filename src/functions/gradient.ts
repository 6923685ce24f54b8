import { randomUUID } from 'node:crypto';
import { isRegression } from '../data/spec.ts';
import { pushChunks } from '../tensor/transfer.ts';
import { setFlatParams } from '../model/flat.ts';
import { computeGradient } from '../model/gradient.ts';
import { checkpointedByDefault } from '../model/zoo.ts';
import type { GradientEvent, GradientResult } from './events.ts';
import { encodeLandedResult, type LandedResult } from './landed-result.ts';
import { allInOrder, backendLabel, checkLayout, ensureBackend, modelFor, readBytes, readLayoutHash, readParams, redisFor } from './runtime.ts';

/**
 * The `gradient` function: reads the parameters and its batch from the peer's Redis,
 * computes the batch's loss and gradient, and pushes the gradient in chunks with PL.PUSH
 * (counted once per contribution id, and only whole; the last arrival writes the average in
 * the database). Every check comes before the first chunk.
 *
 * Timings: loadMs = connection, model (built on a cold start), reads, setting the params;
 * computeMs = forward and backward; pushMs = the chunks' pipelined round trips.
 */
export async function gradient(e: GradientEvent): Promise<GradientResult> {
  const t0 = performance.now();
  const backend = await ensureBackend(e.backend);
  const { client, store } = await redisFor(e.redis);
  const { model, layoutHash, built } = await modelFor(e.model, e.samples, client);
  // All reads go out together (one round trip's latency, not four); errors in this order.
  const [stored, params, images, labels] = await allInOrder<[string, Float32Array, Buffer, Buffer]>([
    readLayoutHash(client, e.layoutKey),
    readParams(store, e.paramsKey),
    readBytes(client, e.batchImagesKey),
    readBytes(client, e.batchLabelsKey),
  ]);
  checkLayout(stored, e.layoutKey, e.layoutHash, layoutHash, e.model.name);
  setFlatParams(model, params);
  const t1 = performance.now();
  const out = computeGradient(model, images, labels, {
    ...(e.microBatch ? { microBatch: e.microBatch } : {}),
    checkpoint: e.checkpoint ?? checkpointedByDefault(e.model.name),
    ...(e.samples ? { samples: e.samples } : {}),
  });
  const t2 = performance.now();
  const result: LandedResult = {
    loss: out.loss,
    // A regression has no accuracy: its measure is the mean absolute error.
    accuracy: e.samples && isRegression(e.samples) ? NaN : out.correct / out.samples,
    ...(e.samples && isRegression(e.samples) ? { mae: out.absError / out.samples } : {}),
    samples: out.samples,
    backend: backendLabel(backend),
    ...(built ? { modelBuilt: true } : {}),
    timings: { loadMs: t1 - t0, computeMs: t2 - t1, pushMs: 0 },
  };
  // One invocation is one attempt: a retried invocation sends everything again under a new
  // name, and the module counts whichever attempt completes first, once. The result goes with
  // the chunks, so the peer can read it even if this answer never reaches it.
  const acc = await pushChunks(client, e, out.gradient, randomUUID(), {
    ...(e.chunkElements ? { chunkElements: e.chunkElements } : {}), result: encodeLandedResult(result),
  });
  result.timings.pushMs = performance.now() - t2;
  return { ...result, count: acc.count, done: acc.done };
}
