import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import type { TrainingConfig } from '../config/training.ts';
import { resolve } from 'node:path';
import { select, type Dataset } from '../data/dataset.ts';
import { splitData } from '../data/shard.ts';
import { isRegression } from '../data/spec.ts';
import { loadSource, preloadSource, type LoadedData } from '../data/sources.ts';
import { DataKeys, storeBatches, storeSamples } from '../data/store.ts';
import type { ModelRef } from '../functions/events.ts';
import { initFunctionBackend } from '../functions/runtime.ts';
import { buildFromTopology, isModelFile, readModelFile, type ModelFile } from '../model/custom.ts';
import { getFlatParams, getLayout } from '../model/flat.ts';
import { checkModelFits } from '../model/gradient.ts';
import { initialParams } from '../model/init.ts';
import { buildModel } from '../model/zoo.ts';
import { K } from '../peer/net/keys.ts';
import type { ModelInfo, PeerData } from '../peer/types.ts';
import type { FunctionPlatform } from '../platform/platform.ts';
import type { Redis } from '../tensor/redis-client.ts';

const sourceOptions = (config: TrainingConfig) => ({
  labelColumn: config.labelColumn, task: config.task, testFraction: config.testFraction, seed: config.seed, syntheticSize: config.syntheticSize,
  ...(config.resize ? { resize: config.resize } : {}),
});

/** The samples of a configuration (loaded once per process, src/data/sources.ts). */
export function dataOf(config: TrainingConfig): LoadedData {
  return loadSource(config.dataset, sourceOptions(config));
}

/** Loads what dataOf will need ahead, where that saves memory (an image folder, decoded in a worker). */
export function preloadData(config: TrainingConfig): Promise<void> {
  return preloadSource(config.dataset, sourceOptions(config));
}

/** The training set of a configuration. */
export function trainingSet(config: TrainingConfig): Dataset {
  return dataOf(config).train;
}

const modelFiles = new Map<string, ModelFile>();

/** A configuration's model.json, read once per process; undefined for a preset of the zoo. */
export function modelFileOf(config: TrainingConfig): ModelFile | undefined {
  if (!isModelFile(config.model.name)) return undefined;
  const path = resolve(config.model.name);
  let f = modelFiles.get(path);
  if (!f) { f = readModelFile(path); modelFiles.set(path, f); }
  return f;
}

/** The configuration's model, built on the functions' backend (zoo presets seeded by config.seed). */
export async function buildNetworkModel(config: TrainingConfig): Promise<tfl.LayersModel> {
  await initFunctionBackend();
  const file = modelFileOf(config);
  return file ? buildFromTopology(file.topology, file.weights, resolve(config.model.name)) : buildModel(config.model.name, config.model.width, config.seed, trainingSet(config).spec);
}

/**
 * Builds the network's model once, to learn its layout and its initial parameters: a zoo
 * preset's are seeded (the same on every backend), a model.json's are its weights when it
 * has them, else seeded the same way. It uses the functions' backend, so a process that also
 * runs the handler in-process (the serverless benchmark's one-machine side) computes exactly
 * as the functions do. The model must fit the data: its input shape and its outputs.
 */
export async function prepareModel(config: TrainingConfig): Promise<{ info: ModelInfo; initialParams: Float32Array }> {
  await preloadData(config);
  const spec = trainingSet(config).spec;
  const file = modelFileOf(config);
  const model = await buildNetworkModel(config);
  try {
    checkModelFits(model, spec);
    const layout = getLayout(model);
    const ref: ModelRef = file ? { name: file.name, topologyKey: K.topology } : { name: config.model.name, width: config.model.width };
    return {
      info: { layoutHash: layout.hash, length: layout.size, trainable: layout.trainableSize, ref },
      initialParams: file && !file.weights ? initialParams(layout, config.seed) : getFlatParams(model),
    };
  } finally {
    model.dispose();
    tf.disposeVariables();
  }
}

export interface PeerDataOptions {
  /** Also store the test set, when the data has one (for the final evaluation). */
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
  await preloadData(config);
  const plan = JSON.stringify({
    dataset: config.dataset, labelColumn: config.labelColumn, task: config.task, testFraction: config.testFraction, resize: config.resize,
    seed: config.seed, syntheticSize: config.syntheticSize, trainSamples: config.trainSamples, validation: config.validationSize, batchSize: config.batchSize, shard,
  });
  const data = dataOf(config);
  // A custom model's topology, where the functions build it from (read-only to them).
  const file = modelFileOf(config);
  if (file) await client.set(K.topology, file.topology);
  const stored = await client.get(DataKeys.meta);
  let batches: number;
  let validationCount: number;
  if (o.skipIfStored && stored && (JSON.parse(stored) as { plan: string }).plan === plan) {
    const meta = JSON.parse(stored) as { batches: number; validation: number };
    batches = meta.batches;
    validationCount = meta.validation;
  } else {
    const all = data.train;
    const split = splitData(all.count, { seed: config.seed, peers: shard.count, validation: config.validationSize, trainSamples: config.trainSamples });
    batches = await storeBatches(client, all, config.batchSize, split.shards[shard.index]);
    validationCount = split.validation.length;
    if (validationCount > 0) await storeSamples(client, select(all, split.validation), DataKeys.validationImages, DataKeys.validationLabels);
    // What a sample is, its scaling and class names: what an export of the model states.
    await client.set(DataKeys.meta, JSON.stringify({ plan, batches, validation: validationCount, samples: data.train.spec, scaling: data.scaling, classNames: data.train.classNames, targetScaling: data.targetScaling }));
  }
  if (o.storeTest && data.test && Number(await client.exists(DataKeys.testLabels)) === 0) {
    await storeSamples(client, data.test, DataKeys.testImages, DataKeys.testLabels);
  }
  return {
    samples: data.train.spec,
    batches,
    batchesTotal: batches,
    batchKeys: (i) => ({ images: DataKeys.batchImages(i), labels: DataKeys.batchLabels(i) }),
    validation: { imagesKey: DataKeys.validationImages, labelsKey: DataKeys.validationLabels, count: validationCount },
  };
}

export interface TestResult {
  /** A classifier's; null for a regression. */
  accuracy: number | null;
  /** Mean loss: cross-entropy, or a regression's mean squared error. */
  loss: number;
  samples: number;
  /** The data they come from ("real MNIST", "csv:/data/iris.csv"). */
  source: string;
  /** A regression's mean absolute error, and the MSE of predicting the training targets' mean: the bar to beat. */
  mae?: number;
  baselineMse?: number;
}

/** The mean squared error of predicting every test target by the training targets' mean. */
function meanPredictorMse(train: Dataset, test: Dataset): number {
  const t = test.spec.targets ?? 1;
  const values = (d: Dataset) => new Float32Array(d.labels.slice().buffer);
  const tr = values(train), te = values(test);
  const mean = new Float64Array(t);
  tr.forEach((v, i) => { mean[i % t] += v / train.count; });
  let sq = 0;
  te.forEach((v, i) => { sq += (v - mean[i % t]!) ** 2; });
  return sq / te.length;
}

/**
 * The final model (any replica: they are identical) on the data's test set, with `evaluate`
 * functions; null when the data has no test set.
 */
export async function evaluateTestSet(platform: FunctionPlatform, url: string, config: TrainingConfig, model: ModelInfo): Promise<TestResult | null> {
  const { train, test, description } = dataOf(config);
  if (!test) return null;
  const count = test.count, chunk = 1000;
  const parts = [];
  for (let start = 0; start < count; start += chunk) {
    parts.push(platform.invoke('evaluate', {
      redis: { url }, model: model.ref, layoutHash: model.layoutHash, layoutKey: K.layout, paramsKey: K.params,
      imagesKey: DataKeys.testImages, labelsKey: DataKeys.testLabels, start, count: Math.min(chunk, count - start), samples: test.spec,
    }));
  }
  const rs = await Promise.all(parts);
  const samples = rs.reduce((s, r) => s + r.samples, 0);
  const loss = rs.reduce((s, r) => s + r.loss * r.samples, 0) / samples;
  if (isRegression(test.spec)) {
    return { source: description, samples, accuracy: null, loss, mae: rs.reduce((s, r) => s + (r.absError ?? 0), 0) / samples, baselineMse: meanPredictorMse(train, test) };
  }
  return { source: description, samples, accuracy: rs.reduce((s, r) => s + r.correct, 0) / samples, loss };
}
