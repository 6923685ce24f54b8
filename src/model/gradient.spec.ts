import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from './backend.js';
import { getFlatParams, getLayout, setFlatParams } from './flat.js';
import { computeGradient, evaluate } from './gradient.js';
import { onBackend, relError, syntheticBatch } from './test-util.js';
import { buildModel, MODEL_NAMES } from './zoo.js';

/** One plain SGD step over the trainable slice, then the BN rule: overwrite the statistics. */
function sgdStep(params: Float32Array, gradient: Float32Array, trainableSize: number, lr: number): Float32Array {
  const next = params.slice();
  for (let i = 0; i < trainableSize; i++) next[i] -= lr * gradient[i]!;
  next.set(gradient.subarray(trainableSize), trainableSize);
  return next;
}

describe('gradient and evaluation', () => {
  beforeAll(async () => {
    await initBackend('wasm');
  });

  it('cnn gradient on wasm matches the cpu backend', async () => {
    const { images, labels } = syntheticBatch(16, 2);
    const ours = computeGradient(buildModel('cnn', 0.5, 7), images, labels);
    const ref = await onBackend('cpu', () => computeGradient(buildModel('cnn', 0.5, 7), images, labels));
    expect(relError(ours.gradient, ref.gradient)).toBeLessThan(1e-4);
    expect(Math.abs(ours.loss - ref.loss)).toBeLessThan(1e-5 * Math.abs(ref.loss));
    expect(ours.correct).toBe(ref.correct);
  });

  it('micro-batches give the whole-batch gradient (no batch norm)', () => {
    const { images, labels } = syntheticBatch(20, 3);
    const model = buildModel('cnn', 0.5, 1);
    const whole = computeGradient(model, images, labels);
    const parts = computeGradient(model, images, labels, { microBatch: 6 });
    expect(parts.samples).toBe(20);
    expect(relError(parts.gradient, whole.gradient)).toBeLessThan(1e-5);
    expect(parts.loss).toBeCloseTo(whole.loss, 5);
    expect(parts.correct).toBe(whole.correct);
  });

  it.each(MODEL_NAMES.map((n) => [n, n === 'densenet121' ? 0.125 : 0.25] as const))(
    '%s (width %s) yields a finite gradient on wasm, leaving the model and memory as they were',
    (name, width) => {
      const { images, labels } = syntheticBatch(8, 4);
      const model = buildModel(name, width, 5);
      const layout = getLayout(model);
      const params = getFlatParams(model);
      const before = tf.memory().numTensors;
      const g = computeGradient(model, images, labels, { microBatch: name === 'densenet121' ? 4 : undefined });
      expect(tf.memory().numTensors).toBe(before);
      expect(g.gradient.length).toBe(layout.size);
      expect(g.gradient.every(Number.isFinite)).toBe(true);
      expect(g.gradient.subarray(0, layout.trainableSize).some((v) => v !== 0)).toBe(true);
      expect(Number.isFinite(g.loss)).toBe(true);
      expect(getFlatParams(model)).toEqual(params);
      // BN statistic slots hold the batch statistics: variances are positive and not all 1.
      for (const e of layout.entries.filter((x) => x.name.endsWith('moving_variance'))) {
        const v = g.gradient.subarray(e.offset, e.offset + e.size);
        expect(v.every((x) => x >= 0)).toBe(true);
      }
      if (layout.trainableSize < layout.size) expect(g.gradient.subarray(layout.trainableSize).some((x) => x !== 0 && x !== 1)).toBe(true);
      model.dispose();
    },
  );

  it('a few SGD steps on a tiny batch reduce the loss (cnn)', () => {
    const { images, labels } = syntheticBatch(32, 6);
    const model = buildModel('cnn', 0.5, 11);
    const { trainableSize } = getLayout(model);
    const first = computeGradient(model, images, labels);
    let g = first;
    for (let step = 0; step < 8; step++) {
      setFlatParams(model, sgdStep(getFlatParams(model), g.gradient, trainableSize, 0.1));
      g = computeGradient(model, images, labels);
    }
    expect(g.loss).toBeLessThan(first.loss * 0.5);
  });

  it('with batch norm, SGD plus the statistics overwrite reduces the inference-mode loss (resnet18)', () => {
    const { images, labels } = syntheticBatch(16, 8);
    const model = buildModel('resnet18', 0.125, 12);
    const { trainableSize } = getLayout(model);
    const g0 = computeGradient(model, images, labels);
    // Statistics overwritten once with the batch's: the baseline inference loss.
    setFlatParams(model, sgdStep(getFlatParams(model), g0.gradient, trainableSize, 0));
    const start = evaluate(model, images, labels);
    for (let step = 0; step < 6; step++) {
      const g = computeGradient(model, images, labels);
      setFlatParams(model, sgdStep(getFlatParams(model), g.gradient, trainableSize, 0.05));
    }
    // Refresh the statistics for the final parameters, then evaluate with moving statistics.
    setFlatParams(model, sgdStep(getFlatParams(model), computeGradient(model, images, labels).gradient, trainableSize, 0));
    const end = evaluate(model, images, labels);
    expect(end.loss).toBeLessThan(start.loss * 0.7);
  });

  it('evaluate sums the loss over samples, counts hits, and leaks nothing', () => {
    const { images, labels } = syntheticBatch(10, 9);
    const model = buildModel('cnn', 0.25, 2);
    const before = tf.memory().numTensors;
    const whole = evaluate(model, images, labels);
    const chunked = evaluate(model, images, labels, { chunk: 3 });
    expect(tf.memory().numTensors).toBe(before);
    expect(whole.samples).toBe(10);
    expect(chunked.loss).toBeCloseTo(whole.loss, 4);
    expect(chunked.correct).toBe(whole.correct);
    const g = computeGradient(model, images, labels);
    expect(whole.loss / 10).toBeCloseTo(g.loss, 4);
  });

  it('rejects malformed batches with a clear error', () => {
    const model = buildModel('cnn', 0.25, 2);
    expect(() => computeGradient(model, new Uint8Array(784 * 2 - 1), new Uint8Array(2))).toThrow('inputs have 1567 bytes, expected 2 x 784 = 1568 for 2 labels (28x28x1 uint8)');
    expect(() => computeGradient(model, new Uint8Array(784), Uint8Array.of(10))).toThrow('label 10 at index 0 is not a class (0..9)');
    expect(() => evaluate(model, new Uint8Array(0), new Uint8Array(0))).toThrow('empty batch');
  });
});
