import { setFlatParams } from '../model/flat.ts';
import { evaluate as evaluateModel } from '../model/gradient.ts';
import type { EvaluateEvent, EvaluateResult } from './events.ts';
import { checkLayout, modelFor, readBytes, redisFor } from './runtime.ts';

const PIXELS = 28 * 28;

/**
 * The `evaluate` function: mean loss and correct count of the peer's parameters on samples
 * [start, start+count) of a held-out set stored in the peer's Redis.
 */
export async function evaluate(e: EvaluateEvent): Promise<EvaluateResult> {
  const t0 = performance.now();
  const { client, store } = await redisFor(e.redis);
  const { model, layoutHash } = await modelFor(e.model);
  await checkLayout(client, e.layoutKey, e.layoutHash, layoutHash, e.model.name);
  const [params, images, labels] = await Promise.all([
    store.get(e.paramsKey).catch((err: Error) => { throw new Error(`parameters "${e.paramsKey}": ${err.message}`); }),
    readBytes(client, e.imagesKey, e.start * PIXELS, (e.start + e.count) * PIXELS - 1),
    readBytes(client, e.labelsKey, e.start, e.start + e.count - 1),
  ]);
  if (labels.length !== e.count) throw new Error(`samples [${e.start}, ${e.start + e.count}) are outside "${e.labelsKey}" (${labels.length} found)`);
  setFlatParams(model, params);
  const t1 = performance.now();
  const out = evaluateModel(model, images, labels);
  return { loss: out.loss / out.samples, correct: out.correct, samples: out.samples, timings: { loadMs: t1 - t0, computeMs: performance.now() - t1 } };
}
