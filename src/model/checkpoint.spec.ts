import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from './backend.js';
import { segmentsOf } from './checkpoint.js';
import { getLayout } from './flat.js';
import { computeGradient } from './gradient.js';
import { syntheticBatch } from './test-util.js';
import { buildModel } from './zoo.js';
import { checkpointable } from './forward.js';
import * as tfl from '@tensorflow/tfjs-layers';

// Gradient checkpointing runs the same kernels on the same values: the gradient (and the
// batch-norm statistics after it) must be the same bytes, with less memory held.
describe('gradient checkpointing', () => {
  beforeAll(async () => {
    await initBackend();
  });

  it.each(['cnn', 'vgg11', 'resnet18', 'densenet121'])('%s: segments cover every layer once, in order', (name) => {
    const model = buildModel(name, 0.125, 1);
    try {
      const segs = segmentsOf(model);
      const layers = model.layers.filter((l) => l.getClassName() !== 'InputLayer');
      expect(segs.flatMap((s) => s.layers)).toEqual(layers);
      expect(segs[0]!.inputId).toBe(model.inputs[0]!.id);
      expect(segs.at(-1)!.outputId).toBe(model.outputs[0]!.id);
      for (let i = 1; i < segs.length; i++) expect(segs[i]!.inputId).toBe(segs[i - 1]!.outputId);
      if (name !== 'cnn') expect(segs.length).toBeGreaterThan(3);
    } finally {
      model.dispose();
    }
  });

  it('a model with dropout runs whole: a second forward would draw other random numbers', () => {
    const input = tfl.input({ shape: [4] });
    const hidden = tfl.layers.dense({ units: 8, activation: 'relu' }).apply(input) as tfl.SymbolicTensor;
    const out = tfl.layers.dense({ units: 2 }).apply(tfl.layers.dropout({ rate: 0.5 }).apply(hidden) as tfl.SymbolicTensor) as tfl.SymbolicTensor;
    const withDropout = tfl.model({ inputs: input, outputs: out });
    const resnet = buildModel('resnet18', 0.125, 1);
    try {
      expect(checkpointable(withDropout)).toBe(false);
      expect(checkpointable(resnet)).toBe(true);
    } finally {
      withDropout.dispose();
      resnet.dispose();
    }
  });

  // On the default backend (native where its addon is built: batch norm as one kernel), and
  // on plain wasm (tfjs-layers' own batch norm).
  it.each<[string, 'auto' | 'wasm']>([['cnn', 'auto'], ['resnet18', 'auto'], ['densenet121', 'auto'], ['resnet18', 'wasm']])('%s on %s: the same gradient bytes, nothing left behind, less memory at the peak', async (name, backend) => {
    await initBackend(backend);
    const { images, labels } = syntheticBatch(8, 4);
    const model = buildModel(name, 0.25, 2);
    try {
      const before = tf.memory().numTensors;
      let plain: Float32Array | undefined, ckpt: Float32Array | undefined;
      // One profile at a time: tf.profile keeps a single active profile.
      const plainPeak = (await tf.profile(() => { plain = computeGradient(model, images, labels).gradient; })).peakBytes;
      const ckptPeak = (await tf.profile(() => { ckpt = computeGradient(model, images, labels, { checkpoint: true }).gradient; })).peakBytes;
      expect(Buffer.from(ckpt!.buffer).equals(Buffer.from(plain!.buffer))).toBe(true);
      expect(ckpt!.length).toBe(getLayout(model).size);
      expect(tf.memory().numTensors).toBe(before);
      if (name !== 'cnn') expect(ckptPeak).toBeLessThan(plainPeak);
    } finally {
      model.dispose();
    }
  });
});
