/**
 * The trained model out of Redis: a TensorFlow.js Layers model (`model.json` + `weights.bin`,
 * what `tf.loadLayersModel('file://.../model.json')` or a browser's `tf.loadLayersModel(url)`
 * read) with `metadata.json` beside it (input scaling, class names, layout hash, final
 * checksum, test accuracy, the run's configuration).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { getLayout, setFlatParams } from './flat.js';
import * as tfl from '@tensorflow/tfjs-layers';
import type { Scaling, TargetScaling } from '../data/formats/splits.js';
import { isRegression } from '../data/spec.js';
import type { SampleSpec } from '../data/spec.js';

export interface ExportMetadata {
  /** The model's input: its shape, and how the source's values were scaled to it. */
  input: { shape: number[]; scaling: Scaling | string };
  /** Class names, or for a regression the targets' standardisation (a prediction p is p * std + mean). */
  classNames: string[];
  target?: TargetScaling;
  layoutHash: string;
  /** The parameters' checksum (PL.CHECKSUM) the network ended with. */
  checksum: string;
  testAccuracy: number | null;
  rounds: number;
  config: unknown;
}

/** Saves `model` as it is into `dir`: `model.json` and `weights.bin`, the TF.js Layers format. */
export async function saveLayersModel(dir: string, model: tfl.LayersModel): Promise<void> {
  mkdirSync(dir, { recursive: true });
  await model.save(tf.io.withSaveHandler(async (a) => {
    const data = Array.isArray(a.weightData) ? Buffer.concat(a.weightData.map((b) => Buffer.from(b))) : Buffer.from(a.weightData as ArrayBuffer);
    writeFileSync(join(dir, 'weights.bin'), data);
    writeFileSync(join(dir, 'model.json'), `${JSON.stringify({
      format: 'layers-model', generatedBy: `TensorFlow.js tfjs-layers (peerless)`, convertedBy: null,
      modelTopology: a.modelTopology, weightsManifest: [{ paths: ['weights.bin'], weights: a.weightSpecs }],
    })}\n`);
    return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
  }));
}

/** Loads what saveLayersModel (or `train --save`) wrote: a model TF.js built from the files. */
export async function loadSavedModel(dir: string): Promise<tfl.LayersModel> {
  const json = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8')) as { modelTopology: object; weightsManifest: { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[] };
  const weights = Buffer.concat(json.weightsManifest.flatMap((g) => g.paths.map((p) => readFileSync(join(dir, p)))));
  return tfl.loadLayersModel(tf.io.fromMemory({
    modelTopology: json.modelTopology, weightSpecs: json.weightsManifest.flatMap((g) => g.weights),
    weightData: weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.byteLength),
  }));
}

/**
 * Writes `params` (the network's flat vector, layout order) into `model` and saves it into
 * `dir`, with what the data was (`samples`, the scaling, class names). Returns the files
 * written. The model is the caller's: it is not disposed.
 */
export async function exportModel(dir: string, model: tfl.LayersModel, params: Float32Array,
  data: { samples: SampleSpec; scaling: Scaling; classNames?: string[]; targetScaling?: TargetScaling },
  meta: Omit<ExportMetadata, 'input' | 'classNames' | 'layoutHash'>): Promise<string[]> {
  const layout = getLayout(model);
  setFlatParams(model, params);
  await saveLayersModel(dir, model);
  const metadata: ExportMetadata = {
    input: { shape: data.samples.shape, scaling: data.scaling },
    classNames: isRegression(data.samples) ? [] : data.classNames ?? Array.from({ length: data.samples.classes }, (_, i) => String(i)),
    ...(data.targetScaling ? { target: data.targetScaling } : {}),
    layoutHash: layout.hash,
    ...meta,
  };
  writeFileSync(join(dir, 'metadata.json'), `${JSON.stringify(metadata, null, 2)}\n`);
  return ['model.json', 'weights.bin', 'metadata.json'].map((f) => join(dir, f));
}
