/**
 * Test fixture: a real redis-server with the module, holding what the functions read — the
 * zoo's cnn (small width) layout hash and seeded params, batches of real MNIST and the test
 * set — plus the same gradient computed in this process, to compare with what a function
 * pushed. Shared by the handler and local platform specs.
 */
import { loadMnist } from '../data/mnist.ts';
import type { Dataset } from '../data/dataset.ts';
import { inputSize, MNIST_SPEC } from '../data/spec.ts';

const PIXELS = inputSize(MNIST_SPEC);
import { initBackend } from '../model/backend.ts';
import { getFlatParams, getLayout } from '../model/flat.ts';
import { computeGradient } from '../model/gradient.ts';
import { buildModel } from '../model/zoo.ts';
import { fromBytes, toBytes } from '../tensor/bytes.ts';
import { BUFFER_REPLIES, type Redis } from '../tensor/redis-client.ts';
import type { EvaluateEvent, FunctionRedis, GradientEvent, ModelRef } from './events.ts';

export const MODEL: ModelRef = { name: 'cnn', width: 0.25 };
export const BATCH = 64;

export interface Seeded {
  layoutHash: string;
  size: number;
  /** Reference gradients of batches 0 and 1, computed here. */
  reference: { gradient: Float32Array; loss: number; correct: number }[];
  event(batch: number, over: Partial<GradientEvent>): GradientEvent;
  evalEvent(start: number, count: number, over?: Partial<EvaluateEvent>): EvaluateEvent;
}

const batchOf = (d: Dataset, i: number) => ({
  inputs: d.inputs.subarray(i * BATCH * PIXELS, (i + 1) * BATCH * PIXELS),
  labels: d.labels.subarray(i * BATCH, (i + 1) * BATCH),
});

export async function seed(client: Redis, redis: FunctionRedis): Promise<Seeded> {
  await initBackend('wasm');
  const model = buildModel(MODEL.name, MODEL.width, 1);
  const layout = getLayout(model);
  const params = getFlatParams(model);
  const train = loadMnist('train');
  const test = loadMnist('test');
  const tx = client.multi()
    .set('model:layout', layout.hash)
    .addCommand(['PL.SET', 'model:params', toBytes(params)])
    .set('data:test:x', Buffer.from(test.inputs))
    .set('data:test:y', Buffer.from(test.labels));
  for (const i of [0, 1]) {
    const b = batchOf(train, i);
    tx.set(`data:batch:${i}:x`, Buffer.from(b.inputs)).set(`data:batch:${i}:y`, Buffer.from(b.labels));
  }
  await tx.exec();
  const reference = [0, 1].map((i) => {
    const b = batchOf(train, i);
    return computeGradient(model, b.inputs, b.labels);
  });
  model.dispose();
  return {
    layoutHash: layout.hash,
    size: layout.size,
    reference,
    event: (batch, over) => ({
      redis, model: MODEL, layoutHash: layout.hash, layoutKey: 'model:layout', paramsKey: 'model:params',
      batchImagesKey: `data:batch:${batch}:x`, batchLabelsKey: `data:batch:${batch}:y`,
      sumKey: 'r:0:gsum', avgKey: 'r:0:gavg', contributionId: `b${batch}`, expected: 1, ...over,
    }),
    evalEvent: (start, count, over = {}) => ({
      redis, model: MODEL, layoutHash: layout.hash, layoutKey: 'model:layout', paramsKey: 'model:params',
      imagesKey: 'data:test:x', labelsKey: 'data:test:y', start, count, ...over,
    }),
  };
}

export async function readFloats(client: Redis, key: string): Promise<Float32Array | null> {
  const v = (await client.sendCommand(['GET', key], BUFFER_REPLIES)) as Buffer | null;
  return v === null ? null : fromBytes(v, key);
}

export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Every key and its value, to show that a failed call changed nothing. */
export async function snapshot(client: Redis): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const k of (await client.keys('*')).sort()) {
    const type = await client.type(k);
    const v = type === 'string' ? ((await client.sendCommand(['GET', k], BUFFER_REPLIES)) as Buffer).toString('base64') : JSON.stringify(await client.hGetAll(k));
    out.set(k, `${type}:${v}`);
  }
  return out;
}
