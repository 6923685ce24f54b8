import * as tf from '@tensorflow/tfjs-core';
import type { TrainingConfig } from '../config/training.ts';
import { select, type Dataset } from '../data/dataset.ts';
import { loadMnist } from '../data/mnist.ts';
import { splitData } from '../data/shard.ts';
import { DataKeys, storeBatches, storeSamples } from '../data/store.ts';
import { syntheticDataset } from '../data/synthetic.ts';
import { initFunctionBackend } from '../functions/runtime.ts';
import { getFlatParams, getLayout } from '../model/flat.ts';
import { buildModel } from '../model/zoo.ts';
import { K } from '../peer/net/keys.ts';
import type { ModelInfo, PeerData } from '../peer/types.ts';
import type { FunctionPlatform } from '../platform/platform.ts';
import type { Redis } from '../tensor/redis-client.ts';

/**
 * Builds the network's model once, to learn its layout and its seeded initial parameters
 * (computed from the seed, the same on every backend). It uses the functions' backend, so a
 * process that also runs the handler in-process (the serverless benchmark's one-machine
 * side) computes exactly as the functions do.
 */
export async function prepareModel(config: TrainingConfig): Promise<{ info: ModelInfo; initialParams: Float32Array }> {
  await initFunctionBackend();
  const model = buildModel(config.model.name, config.model.width, config.seed);
  try {
    const layout = getLayout(model);
    return {
      info: { layoutHash: layout.hash, length: layout.size, trainable: layout.trainableSize },
      initialParams: getFlatParams(model),
    };
  } finally {
    model.dispose();
    tf.disposeVariables();
  }
}

/** The training set of a configuration: real MNIST, or the seeded synthetic set. */
export function trainingSet(config: TrainingConfig): Dataset {
  return config.dataset === 'mnist' ? loadMnist('train') : syntheticDataset(config.syntheticSize, config.seed);
}

export interface PeerDataOptions {
  /** Also store the 10k MNIST test set (for the final evaluation). */
  storeTest: boolean;
  /** Keep data already stored by the same plan (a resumed run). */
  skipIfStored: boolean;
}

/**
 * Stores a peer's shard (as batches) and the held-out validation set in the peer's Redis.
 * Every peer derives the same split from the seed, so each takes its own shard without
 * any data moving between peers.
 */
export async function preparePeerData(client: Redis, config: TrainingConfig, shard: { index: number; count: number }, o: PeerDataOptions): Promise<PeerData & { batchesTotal: number }> {
  const plan = JSON.stringify({ dataset: config.dataset, seed: config.seed, syntheticSize: config.syntheticSize, trainSamples: config.trainSamples, validation: config.validationSize, batchSize: config.batchSize, shard });
  const stored = await client.get(DataKeys.meta);
  let batches: number;
  let validationCount: number;
  if (o.skipIfStored && stored && (JSON.parse(stored) as { plan: string }).plan === plan) {
    const meta = JSON.parse(stored) as { batches: number; validation: number };
    batches = meta.batches;
    validationCount = meta.validation;
  } else {
    const all = trainingSet(config);
    const split = splitData(all.count, { seed: config.seed, peers: shard.count, validation: config.validationSize, trainSamples: config.trainSamples });
    batches = await storeBatches(client, select(all, split.shards[shard.index]), config.batchSize);
    validationCount = split.validation.length;
    if (validationCount > 0) await storeSamples(client, select(all, split.validation), DataKeys.validationImages, DataKeys.validationLabels);
    await client.set(DataKeys.meta, JSON.stringify({ plan, batches, validation: validationCount }));
  }
  if (o.storeTest && Number(await client.exists(DataKeys.testLabels)) === 0) {
    await storeSamples(client, loadMnist('test'), DataKeys.testImages, DataKeys.testLabels);
  }
  return {
    batches,
    batchesTotal: batches,
    batchKeys: (i) => ({ images: DataKeys.batchImages(i), labels: DataKeys.batchLabels(i) }),
    validation: { imagesKey: DataKeys.validationImages, labelsKey: DataKeys.validationLabels, count: validationCount },
  };
}

export interface TestResult {
  accuracy: number;
  loss: number;
  samples: number;
}

/** The final model (any replica: they are identical) on the 10k MNIST test set, with `evaluate` functions. */
export async function evaluateTestSet(platform: FunctionPlatform, url: string, config: TrainingConfig, model: ModelInfo): Promise<TestResult> {
  const count = 10_000, chunk = 1000;
  const parts = [];
  for (let start = 0; start < count; start += chunk) {
    parts.push(platform.invoke('evaluate', {
      redis: { url }, model: config.model, layoutHash: model.layoutHash, layoutKey: K.layout, paramsKey: K.params,
      imagesKey: DataKeys.testImages, labelsKey: DataKeys.testLabels, start, count: Math.min(chunk, count - start),
    }));
  }
  const rs = await Promise.all(parts);
  const samples = rs.reduce((s, r) => s + r.samples, 0);
  return {
    samples,
    accuracy: rs.reduce((s, r) => s + r.correct, 0) / samples,
    loss: rs.reduce((s, r) => s + r.loss * r.samples, 0) / samples,
  };
}
