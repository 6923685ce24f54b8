import { describe, expect, it } from 'vitest';
import { inputSize, MNIST_SPEC } from './spec.ts';
import { syntheticDataset } from './synthetic.ts';

const PIXELS = inputSize(MNIST_SPEC), CLASSES = MNIST_SPEC.classes;

describe('syntheticDataset', () => {
  it('has the MNIST format and is the same for the same seed', () => {
    const d = syntheticDataset(500, 1);
    expect(d.count).toBe(500);
    expect(d.inputs.length).toBe(500 * PIXELS);
    expect(d.labels.length).toBe(500);
    expect(Math.max(...d.labels)).toBeLessThan(CLASSES);
    expect(new Set(d.labels).size).toBe(CLASSES);
    const again = syntheticDataset(500, 1);
    expect(Buffer.compare(again.inputs, d.inputs)).toBe(0);
    expect(Buffer.compare(again.labels, d.labels)).toBe(0);
    expect(Buffer.compare(syntheticDataset(500, 2).inputs, d.inputs)).not.toBe(0);
  });

  it('is learnable: nearest class mean classifies held-out samples far above chance', () => {
    const train = syntheticDataset(1000, 5);
    const means = Array.from({ length: CLASSES }, () => new Float64Array(PIXELS));
    const counts = new Array<number>(CLASSES).fill(0);
    for (let i = 0; i < train.count; i++) {
      counts[train.labels[i]]++;
      for (let p = 0; p < PIXELS; p++) means[train.labels[i]][p] += train.inputs[i * PIXELS + p];
    }
    means.forEach((m, c) => m.forEach((v, p) => { m[p] = v / counts[c]; }));
    // Held-out: a later part of the same seeded stream (same class prototypes).
    const all = syntheticDataset(1200, 5);
    let correct = 0;
    for (let i = 1000; i < 1200; i++) {
      let best = -1, bestD = Infinity;
      for (let c = 0; c < CLASSES; c++) {
        let d = 0;
        for (let p = 0; p < PIXELS; p++) d += (all.inputs[i * PIXELS + p] - means[c][p]) ** 2;
        if (d < bestD) { bestD = d; best = c; }
      }
      if (best === all.labels[i]) correct++;
    }
    expect(correct / 200).toBeGreaterThan(0.8);
  });
});
