import { inputBytes, isRegression, labelBytes, MNIST_SPEC } from '../data/spec.ts';
import { setFlatParams } from '../model/flat.ts';
import { evaluate as evaluateModel } from '../model/gradient.ts';
import type { EvaluateEvent, EvaluateResult } from './events.ts';
import { allInOrder, checkLayout, modelFor, readBytes, readLayoutHash, readParams, redisFor } from './runtime.ts';

/**
 * The `evaluate` function: mean loss and correct count of the peer's parameters on samples
 * [start, start+count) of a held-out set stored in the peer's Redis (only that range is read).
 */
export async function evaluate(e: EvaluateEvent): Promise<EvaluateResult> {
  const t0 = performance.now();
  const spec = e.samples ?? MNIST_SPEC;
  const xb = inputBytes(spec), yb = labelBytes(spec);
  const { client, store } = await redisFor(e.redis);
  const { model, layoutHash } = await modelFor(e.model, spec, client);
  const [stored, params, inputs, labels] = await allInOrder<[string, Float32Array, Buffer, Buffer]>([
    readLayoutHash(client, e.layoutKey),
    readParams(store, e.paramsKey),
    readBytes(client, e.imagesKey, e.start * xb, (e.start + e.count) * xb - 1),
    readBytes(client, e.labelsKey, e.start * yb, (e.start + e.count) * yb - 1),
  ]);
  checkLayout(stored, e.layoutKey, e.layoutHash, layoutHash, e.model.name);
  if (labels.length !== e.count * yb || inputs.length !== e.count * xb) {
    const have = Math.min(Math.floor(Number(await client.strLen(e.labelsKey)) / yb), Math.floor(Number(await client.strLen(e.imagesKey)) / xb));
    throw new Error(`samples [${e.start}, ${e.start + e.count}) are outside the held-out set "${e.labelsKey}" (${have} samples)`);
  }
  setFlatParams(model, params);
  const t1 = performance.now();
  const out = evaluateModel(model, inputs, labels, { samples: spec });
  return { loss: out.loss / out.samples, correct: out.correct, ...(isRegression(spec) ? { absError: out.absError } : {}), samples: out.samples, timings: { loadMs: t1 - t0, computeMs: performance.now() - t1 } };
}
