import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from './backend.js';
import { getFlatParams, getLayout, setFlatParams } from './flat.js';
import { buildModel } from './zoo.js';

describe('flat parameter vector', () => {
  beforeAll(async () => {
    await initBackend('wasm');
  });

  it('round-trips exactly and leaks no tensors', () => {
    const model = buildModel('resnet18', 0.125, 3);
    const layout = getLayout(model);
    const before = tf.memory().numTensors;
    const flat = getFlatParams(model);
    expect(flat.length).toBe(layout.size);
    const changed = flat.map((v, i) => v + (i % 7) * 0.25);
    setFlatParams(model, changed);
    expect(getFlatParams(model)).toEqual(changed);
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });

  it('lays out trainable weights first, then BN moving statistics', () => {
    const layout = getLayout(buildModel('resnet18', 0.125, 0));
    const firstStat = layout.entries.findIndex((e) => !e.trainable);
    expect(layout.entries.slice(firstStat).every((e) => !e.trainable && /moving_(mean|variance)$/.test(e.name))).toBe(true);
    expect(layout.entries[firstStat]!.offset).toBe(layout.trainableSize);
    let offset = 0;
    for (const e of layout.entries) {
      expect(e.offset).toBe(offset);
      expect(e.size).toBe(e.shape.reduce((a, b) => a * b, 1));
      offset += e.size;
    }
    expect(offset).toBe(layout.size);
    expect(getLayout(buildModel('cnn', 0.25, 0)).trainableSize).toBe(getLayout(buildModel('cnn', 0.25, 0)).size);
  });

  it('has a layout hash stable across builds and distinct across models and widths', () => {
    const h = (name: string, width: number, seed = 0): string => getLayout(buildModel(name, width, seed)).hash;
    expect(h('cnn', 0.5)).toMatch(/^[0-9a-f]{16}$/);
    expect(h('cnn', 0.5)).toBe(h('cnn', 0.5, 9));
    expect(h('resnet18', 0.125)).toBe(h('resnet18', 0.125));
    const all = new Set([h('cnn', 0.25), h('cnn', 0.5), h('vgg11', 0.125), h('resnet18', 0.125), h('resnet18', 0.25), h('densenet121', 0.125)]);
    expect(all.size).toBe(6);
  });

  it('builds identical parameters from the same seed, different ones from another', () => {
    const a = getFlatParams(buildModel('cnn', 0.5, 42));
    const b = getFlatParams(buildModel('cnn', 0.5, 42));
    const c = getFlatParams(buildModel('cnn', 0.5, 43));
    expect(b).toEqual(a);
    expect(c).not.toEqual(a);
  });

  it('refuses a vector of the wrong length, naming model, layout and sizes, and changes nothing', () => {
    const model = buildModel('cnn', 0.25, 1);
    const layout = getLayout(model);
    const before = getFlatParams(model);
    expect(() => setFlatParams(model, new Float32Array(layout.size - 1))).toThrow(
      `setFlatParams: model "cnn" (layout ${layout.hash}) has ${layout.size} parameters, got a vector of ${layout.size - 1}`,
    );
    expect(getFlatParams(model)).toEqual(before);
  });
});
