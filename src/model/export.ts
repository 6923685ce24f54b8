/**
 * The trained model out of Redis: a TensorFlow.js Layers model (`model.json` + `weights.bin`,
 * what `tf.loadLayersModel('file://.../model.json')` or a browser's `tf.loadLayersModel(url)`
 * read) with `metadata.json` beside it (input scaling, class names, layout hash, final
 * checksum, test accuracy, the run's configuration).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { getLayout, setFlatParams } from './flat.js';
import { buildModel, IMAGE_SIZE, NUM_CLASSES } from './zoo.js';

export interface ExportMetadata {
  /** How an input image becomes the model's input: uint8 pixels / 255, 28x28x1. */
  input: { shape: number[]; scaling: string };
  classNames: string[];
  layoutHash: string;
  /** The parameters' checksum (PL.CHECKSUM) the network ended with. */
  checksum: string;
  testAccuracy: number | null;
  rounds: number;
  config: unknown;
}

/**
 * Writes `params` (the network's flat vector, layout order) as model `name` at `width` into
 * `dir`. Returns the files written.
 */
export async function exportModel(dir: string, name: string, width: number, params: Float32Array,
  meta: Omit<ExportMetadata, 'input' | 'classNames' | 'layoutHash'>): Promise<string[]> {
  const model = buildModel(name, width, 0);
  try {
    const layout = getLayout(model);
    setFlatParams(model, params);
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
    const metadata: ExportMetadata = {
      input: { shape: [IMAGE_SIZE, IMAGE_SIZE, 1], scaling: 'uint8 pixel / 255' },
      classNames: Array.from({ length: NUM_CLASSES }, (_, i) => String(i)),
      layoutHash: layout.hash,
      ...meta,
    };
    writeFileSync(join(dir, 'metadata.json'), `${JSON.stringify(metadata, null, 2)}\n`);
    return ['model.json', 'weights.bin', 'metadata.json'].map((f) => join(dir, f));
  } finally {
    model.dispose();
  }
}
