import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from './backend.js';
import { getLayout } from './flat.js';
import { buildModel, MODEL_NAMES } from './zoo.js';

// The parameter counts of README.md's table (width 1). A change here must update the README.
const COUNTS: Record<string, { trainable: number; bnStats: number }> = {
  cnn: { trainable: 225_034, bnStats: 0 },
  vgg11: { trainable: 9_487_114, bnStats: 0 },
  resnet18: { trainable: 11_172_810, bnStats: 9_600 },
  densenet121: { trainable: 6_955_146, bnStats: 83_520 },
  mlp: { trainable: 235_146, bnStats: 0 },
};

describe('model zoo', () => {
  beforeAll(async () => {
    await initBackend('wasm');
  });

  it('rejects an unknown model by name', () => {
    expect(() => buildModel('alexnet')).toThrow('unknown model "alexnet": expected one of cnn, vgg11, resnet18, densenet121');
  });

  it.each(MODEL_NAMES.map((n) => [n]))('%s at width 1 has the documented parameter counts', (name) => {
    const model = buildModel(name, 1, 0);
    const layout = getLayout(model);
    expect({ trainable: layout.trainableSize, bnStats: layout.size - layout.trainableSize }).toEqual(COUNTS[name]);
    expect(model.outputs[0]!.shape).toEqual([null, 10]);
    model.dispose();
  });

  it('scales channels by width, never below one', () => {
    const tiny = getLayout(buildModel('cnn', 0.001, 0));
    expect(tiny.entries.find((e) => e.name === 'conv1/kernel')!.shape).toEqual([3, 3, 1, 1]);
    expect(getLayout(buildModel('cnn', 0.5, 0)).entries.find((e) => e.name === 'conv2/kernel')!.shape).toEqual([3, 3, 16, 32]);
  });

  it('disposing a built model frees its variables', () => {
    const before = tf.memory().numTensors;
    buildModel('vgg11', 0.125, 0).dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});
