/**
 * The gradient and evaluation computations of the serverless functions: bytes in, numbers
 * out, no tensors left behind.
 *
 * Inputs and labels are the bytes a dataset stores (src/data/spec.ts): uint8 inputs are
 * scaled to [0, 1] (x / 255), float32 inputs used as they are; labels are class indices.
 * The loss is the model's head's (head.ts): softmax cross-entropy over K outputs, binary on
 * one output, or a regression's mean squared error.
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { labelAt } from '../data/dataset.js';
import { inputBytes, inputSize, isRegression, labelBytes, MNIST_SPEC, type SampleSpec } from '../data/spec.js';
import { getLayout, layoutVariables, flatGradient } from './flat.js';
import { forward } from './forward.js';
import { headLoss, headMeasure, headOf, type Head } from './head.js';

export interface GradientOptions {
  /** Samples per forward/backward pass (bounds memory); default: the whole batch. */
  microBatch?: number;
  /**
   * Gradient checkpointing (checkpoint.ts): keep only segment inputs for the backward pass
   * and recompute the rest there. Less memory for one more forward pass; the same gradient.
   */
  checkpoint?: boolean;
  /** What the bytes are; default MNIST's. */
  samples?: SampleSpec;
}

export interface GradientOutput {
  /** Layout-sized: d(mean loss)/dw in [0, trainableSize), batch BN statistics after it. */
  gradient: Float32Array;
  /** Mean loss over the batch. */
  loss: number;
  /** Correct predictions (0 for a regression). */
  correct: number;
  /** Regression: the sum over samples of the mean absolute error (0 for a classifier). */
  absError: number;
  samples: number;
}

export interface EvaluationOutput {
  /** SUM of the loss over the samples (divide by samples for the mean). */
  loss: number;
  correct: number;
  absError: number;
  samples: number;
}

/** Decoded class indices, checked against the class count; a regression's target values, checked finite. */
function decodeLabels(bytes: Uint8Array, spec: SampleSpec): Int32Array | Float32Array {
  if (isRegression(spec)) {
    const values = new Float32Array(bytes.length / 4);
    new Uint8Array(values.buffer).set(bytes);
    const bad = values.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) throw new Error(`target value ${values[bad]} of sample ${Math.floor(bad / spec.targets!)} is not a finite number`);
    return values;
  }
  const n = bytes.length / labelBytes(spec);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const v = labelAt({ labels: bytes, spec }, i);
    if (v >= spec.classes) throw new Error(`label ${v} at index ${i} is not a class (0..${spec.classes - 1})`);
    out[i] = v;
  }
  return out;
}

/** Checks sizes; returns the sample count and the decoded labels. */
function checkBatch(inputs: Uint8Array, labels: Uint8Array, spec: SampleSpec): { n: number; y: Int32Array | Float32Array } {
  if (labels.length % labelBytes(spec) !== 0) throw new Error(`labels have ${labels.length} bytes, not a whole number of ${labelBytes(spec)}-byte labels`);
  const n = labels.length / labelBytes(spec);
  if (n === 0) throw new Error('empty batch: no labels');
  const per = inputBytes(spec);
  if (inputs.length !== n * per) {
    throw new Error(`inputs have ${inputs.length} bytes, expected ${n} x ${per} = ${n * per} for ${n} labels (${spec.shape.join('x')} ${spec.dtype})`);
  }
  return { n, y: decodeLabels(labels, spec) };
}

/** Samples [start, start+count) as a float tensor of shape [count, ...spec.shape]. */
function inputTensor(inputs: Uint8Array, spec: SampleSpec, start: number, count: number): tf.Tensor {
  const size = inputSize(spec);
  const values = new Float32Array(count * size);
  if (spec.dtype === 'uint8') {
    const src = inputs.subarray(start * size, (start + count) * size);
    for (let i = 0; i < values.length; i++) values[i] = src[i]! / 255;
  } else {
    // A copy: bytes from Redis need not be 4-byte aligned.
    new Uint8Array(values.buffer).set(inputs.subarray(start * size * 4, (start + count) * size * 4));
    const bad = values.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) throw new Error(`input value ${values[bad]} in sample ${start + Math.floor(bad / size)} is not a finite number`);
  }
  return tf.tensor(values, [count, ...spec.shape], 'float32');
}

/** The model's head for samples `spec`; an error naming the mismatch when the model does not fit them. */
function headFor(model: tfl.LayersModel, spec: SampleSpec): Head {
  const want = model.inputs[0]!.shape.slice(1);
  if (want.length !== spec.shape.length || want.some((d, i) => d !== null && d !== spec.shape[i])) {
    throw new Error(`model "${model.name}" takes inputs of shape [${want.map((d) => d ?? '?').join(', ')}], the data's are [${spec.shape.join(', ')}]`);
  }
  return headOf(model, spec.classes, spec.targets);
}

/** Labels of samples [start, start+count) as the head takes them. */
function labelTensor(y: Int32Array | Float32Array, spec: SampleSpec, start: number, count: number): tf.Tensor {
  if (y instanceof Int32Array) return tf.tensor1d(y.subarray(start, start + count), 'int32');
  const t = spec.targets!;
  return tf.tensor2d(y.subarray(start * t, (start + count) * t), [count, t], 'float32');
}

/** Throws one line naming the mismatch when `model` cannot train on samples `spec`. */
export function checkModelFits(model: tfl.LayersModel, spec: SampleSpec): void {
  headFor(model, spec);
}

/**
 * The gradient of the batch's mean cross-entropy, in layout order. With `microBatch`, the
 * batch runs in slices whose gradients (and BN statistics) are summed weighted by
 * slice size / batch size: the same mean gradient, in bounded memory (BN then normalises
 * over each slice, as a smaller batch would). The model is left as it was found.
 */
export function computeGradient(model: tfl.LayersModel, inputs: Uint8Array, labels: Uint8Array, opts: GradientOptions = {}): GradientOutput {
  const spec = opts.samples ?? MNIST_SPEC;
  const { n, y: classes } = checkBatch(inputs, labels, spec);
  const head = headFor(model, spec);
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
  let measure = 0;
  try {
    for (let start = 0; start < n; start += mb) {
      const m = Math.min(mb, n - start);
      const weight = m / n;
      tf.tidy(() => {
        const x = inputTensor(inputs, spec, start, m);
        const y = labelTensor(classes, spec, start, m);
        let hits: tf.Scalar | undefined;
        const { value, grads } = tf.variableGrads(() => {
          const out = forward(model, x, true, { checkpoint: opts.checkpoint });
          hits = tf.keep(headMeasure(head, out, y));
          return headLoss(head, out, y, 'mean');
        }, trainable);
        lossSum += value.dataSync()[0]! * m;
        measure += hits!.dataSync()[0]!;
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
  const regression = head.kind === 'regression';
  return { gradient: gradient!, loss: lossSum / n, correct: regression ? 0 : measure, absError: regression ? measure : 0, samples: n };
}

/** Loss (sum) and correct count in inference mode (BN uses its moving statistics). */
export function evaluate(model: tfl.LayersModel, inputs: Uint8Array, labels: Uint8Array, opts: { chunk?: number; samples?: SampleSpec } = {}): EvaluationOutput {
  const spec = opts.samples ?? MNIST_SPEC;
  const { n, y: classes } = checkBatch(inputs, labels, spec);
  const head = headFor(model, spec);
  const chunk = opts.chunk !== undefined && opts.chunk > 0 ? opts.chunk : 256;
  let loss = 0;
  let measure = 0;
  for (let start = 0; start < n; start += chunk) {
    const m = Math.min(chunk, n - start);
    const [l, c] = tf.tidy(() => {
      const y = labelTensor(classes, spec, start, m);
      const out = forward(model, inputTensor(inputs, spec, start, m), false);
      return [headLoss(head, out, y, 'sum').dataSync()[0]!, headMeasure(head, out, y).dataSync()[0]!];
    });
    loss += l;
    measure += c;
  }
  const regression = head.kind === 'regression';
  return { loss, correct: regression ? 0 : measure, absError: regression ? measure : 0, samples: n };
}
