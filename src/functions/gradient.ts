import { setFlatParams } from '../model/flat.ts';
import { computeGradient } from '../model/gradient.ts';
import type { GradientEvent, GradientResult } from './events.ts';
import { checkLayout, modelFor, readBytes, redisFor } from './runtime.ts';

/**
 * The `gradient` function: reads the parameters and its batch from the peer's Redis,
 * computes the batch's loss and gradient, and pushes the gradient with one idempotent
 * PL.ACCUM (counted once per contribution id; the last arrival writes the average in the
 * database). One push, so nothing is ever half-written.
 */
export async function gradient(e: GradientEvent): Promise<GradientResult> {
  const t0 = performance.now();
  const { client, store } = await redisFor(e.redis);
  const { model, layoutHash } = await modelFor(e.model);
  await checkLayout(client, e.layoutKey, e.layoutHash, layoutHash, e.model.name);
  const [params, images, labels] = await Promise.all([
    store.get(e.paramsKey).catch((err: Error) => { throw new Error(`parameters "${e.paramsKey}": ${err.message}`); }),
    readBytes(client, e.batchImagesKey),
    readBytes(client, e.batchLabelsKey),
  ]);
  setFlatParams(model, params);
  const t1 = performance.now();
  const out = computeGradient(model, images, labels, e.microBatch ? { microBatch: e.microBatch } : {});
  const t2 = performance.now();
  const acc = await store.accumulate(e.sumKey, e.avgKey, e.contributionId, e.expected, out.gradient);
  const t3 = performance.now();
  return {
    loss: out.loss,
    accuracy: out.correct / out.samples,
    samples: out.samples,
    count: acc.count,
    done: acc.done,
    timings: { loadMs: t1 - t0, computeMs: t2 - t1, pushMs: t3 - t2 },
  };
}
