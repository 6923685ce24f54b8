/**
 * The gradient and evaluation computations of the serverless functions: bytes in, numbers
 * out, no tensors left behind.
 *
 * Inputs: images as uint8 (n x 784, 0..255), labels as uint8 (n, 0..9). Pixels are scaled
 * to [0, 1] (x / 255), no standardisation. Loss: softmax cross-entropy.
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { getLayout, layoutVariables, flatGradient } from './flat.js';
import { forward } from './forward.js';
import { IMAGE_SIZE, NUM_CLASSES } from './zoo.js';

const PIXELS = IMAGE_SIZE * IMAGE_SIZE;

export interface GradientOptions {
  /** Samples per forward/backward pass (bounds memory); default: the whole batch. */
  microBatch?: number;
  /**
   * Gradient checkpointing (checkpoint.ts): keep only segment inputs for the backward pass
   * and recompute the rest there. Less memory for one more forward pass; the same gradient.
   */
  checkpoint?: boolean;
}

export interface GradientOutput {
  /** Layout-sized: d(mean loss)/dw in [0, trainableSize), batch BN statistics after it. */
  gradient: Float32Array;
  /** Mean cross-entropy over the batch. */
  loss: number;
  correct: number;
  samples: number;
}

export interface EvaluationOutput {
  /** SUM of cross-entropy over the samples (divide by samples for the mean). */
  loss: number;
  correct: number;
  samples: number;
}

function checkBatch(images: Uint8Array, labels: Uint8Array): number {
  const n = labels.length;
  if (n === 0) throw new Error('empty batch: no labels');
  if (images.length !== n * PIXELS) {
    throw new Error(`images have ${images.length} bytes, expected ${n} x ${PIXELS} = ${n * PIXELS} for ${n} labels`);
  }
  for (let i = 0; i < n; i++) {
    if (labels[i]! >= NUM_CLASSES) throw new Error(`label ${labels[i]} at index ${i} is not a class (0..${NUM_CLASSES - 1})`);
  }
  return n;
}

function imageTensor(images: Uint8Array, start: number, count: number): tf.Tensor4D {
  const px = new Float32Array(count * PIXELS);
  const src = images.subarray(start * PIXELS, (start + count) * PIXELS);
  for (let i = 0; i < px.length; i++) px[i] = src[i]! / 255;
  return tf.tensor4d(px, [count, IMAGE_SIZE, IMAGE_SIZE, 1]);
}

function labelTensor(labels: Uint8Array, start: number, count: number): tf.Tensor1D {
  return tf.tensor1d(Int32Array.from(labels.subarray(start, start + count)), 'int32');
}

function countCorrect(logits: tf.Tensor, labels: tf.Tensor1D): tf.Scalar {
  return tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), labels), 'int32'));
}

/**
 * The gradient of the batch's mean cross-entropy, in layout order. With `microBatch`, the
 * batch runs in slices whose gradients (and BN statistics) are summed weighted by
 * slice size / batch size: the same mean gradient, in bounded memory (BN then normalises
 * over each slice, as a smaller batch would). The model is left as it was found.
 */
export function computeGradient(model: tfl.LayersModel, images: Uint8Array, labels: Uint8Array, opts: GradientOptions = {}): GradientOutput {
  const n = checkBatch(images, labels);
  const layout = getLayout(model);
  const vars = layoutVariables(model);
  const nTrainable = layout.entries.filter((e) => e.trainable).length;
  const trainable = vars.slice(0, nTrainable);
  const stats = layout.entries.slice(nTrainable);
  // Training-mode BN overwrites its moving statistics with the batch's (momentum 0): keep
  // the originals to put back.
  const savedStats = stats.map((_, i) => vars[nTrainable + i]!.dataSync().slice() as Float32Array);
  const mb = opts.microBatch !== undefined && opts.microBatch > 0 ? Math.min(opts.microBatch, n) : n;
  // One pass (no micro-batches) writes the gradient outright; slices add into it.
  let gradient: Float32Array | undefined = mb === n ? undefined : new Float32Array(layout.size);
  let lossSum = 0;
  let correct = 0;
  try {
    for (let start = 0; start < n; start += mb) {
      const m = Math.min(mb, n - start);
      const weight = m / n;
      tf.tidy(() => {
        const x = imageTensor(images, start, m);
        const y = labelTensor(labels, start, m);
        const oneHot = tf.oneHot(y, NUM_CLASSES);
        let hits: tf.Scalar | undefined;
        const { value, grads } = tf.variableGrads(() => {
          const logits = forward(model, x, true, { checkpoint: opts.checkpoint });
          hits = tf.keep(countCorrect(logits, y));
          return tf.losses.softmaxCrossEntropy(oneHot, logits) as tf.Scalar;
        }, trainable);
        lossSum += value.dataSync()[0]! * m;
        correct += hits!.dataSync()[0]!;
        hits!.dispose();
        const byIndex = trainable.map((v) => grads[v.name]);
        const out = gradient === undefined ? flatGradient(layout, byIndex) : flatGradient(layout, byIndex, gradient, weight);
        gradient = out;
        stats.forEach((e, i) => {
          const d = vars[nTrainable + i]!.dataSync() as Float32Array;
          for (let j = 0; j < e.size; j++) out[e.offset + j] += weight * d[j]!;
        });
      });
    }
  } finally {
    tf.tidy(() => stats.forEach((e, i) => vars[nTrainable + i]!.assign(tf.tensor(savedStats[i]!, e.shape, 'float32'))));
  }
  return { gradient: gradient!, loss: lossSum / n, correct, samples: n };
}

/** Loss (sum) and correct count in inference mode (BN uses its moving statistics). */
export function evaluate(model: tfl.LayersModel, images: Uint8Array, labels: Uint8Array, opts: { chunk?: number } = {}): EvaluationOutput {
  const n = checkBatch(images, labels);
  const chunk = opts.chunk !== undefined && opts.chunk > 0 ? opts.chunk : 256;
  let loss = 0;
  let correct = 0;
  for (let start = 0; start < n; start += chunk) {
    const m = Math.min(chunk, n - start);
    const [l, c] = tf.tidy(() => {
      const y = labelTensor(labels, start, m);
      const logits = forward(model, imageTensor(images, start, m), false);
      const ce = tf.losses.softmaxCrossEntropy(tf.oneHot(y, NUM_CLASSES), logits, undefined, 0, tf.Reduction.SUM);
      return [ce.dataSync()[0]!, countCorrect(logits, y).dataSync()[0]!];
    });
    loss += l;
    correct += c;
  }
  return { loss, correct, samples: n };
}
