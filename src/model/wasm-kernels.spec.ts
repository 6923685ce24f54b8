import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from './backend.js';
import { onBackend, relError, seeded } from './test-util.js';

// Our composed wasm kernels against tfjs' reference cpu kernels, on random inputs.
// Tolerance: max abs difference <= 1e-4 x max |reference| (float32 sums in another order).
const TOL = 1e-4;

type Shape4 = [number, number, number, number];
interface Case { x: Shape4; f: Shape4; stride: number; pad: 'same' | 'valid' }

const cases: Case[] = [
  { x: [2, 7, 7, 3], f: [3, 3, 3, 4], stride: 1, pad: 'same' },
  { x: [2, 7, 7, 3], f: [3, 3, 3, 4], stride: 1, pad: 'valid' },
  { x: [2, 7, 7, 3], f: [3, 3, 3, 4], stride: 2, pad: 'same' },
  { x: [2, 8, 8, 3], f: [3, 3, 3, 4], stride: 2, pad: 'same' },
  { x: [2, 8, 8, 3], f: [3, 3, 3, 4], stride: 2, pad: 'valid' },
  { x: [3, 9, 6, 5], f: [3, 2, 5, 2], stride: 2, pad: 'valid' },
  { x: [2, 7, 7, 4], f: [1, 1, 4, 6], stride: 1, pad: 'same' },
  { x: [2, 7, 7, 4], f: [1, 1, 4, 6], stride: 2, pad: 'valid' },
  { x: [1, 28, 28, 1], f: [5, 5, 1, 3], stride: 2, pad: 'same' },
  { x: [4, 14, 14, 8], f: [3, 3, 8, 16], stride: 1, pad: 'same' },
];

async function convGrads(c: Case, xv: Float32Array, wv: Float32Array, dyv: Float32Array): Promise<{ dx: Float32Array; dw: Float32Array }> {
  return tf.tidy(() => {
    const x = tf.tensor4d(xv, c.x);
    const w = tf.tensor4d(wv, c.f);
    const y = tf.conv2d(x, w, c.stride, c.pad);
    const dy = tf.tensor(dyv, y.shape);
    const dx = tf.conv2dTranspose(dy as tf.Tensor4D, w, c.x, c.stride, c.pad);
    // conv2dTranspose is Conv2DBackpropInput; the filter gradient via tf.grad exercises
    // Conv2DBackpropFilter the way training does.
    const dw = tf.grad((wt: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(x, wt as tf.Tensor4D, c.stride, c.pad), dy)))(w);
    return { dx: dx.dataSync() as Float32Array, dw: dw.dataSync() as Float32Array };
  });
}

describe('wasm training kernels', () => {
  beforeAll(async () => {
    expect(await initBackend('wasm')).toBe('wasm');
  });

  it.each(cases)('conv2d gradients match cpu: x $x, f $f, stride $stride, $pad', async (c) => {
    const xv = seeded(c.x.reduce((a, b) => a * b), 1);
    const wv = seeded(c.f.reduce((a, b) => a * b), 2);
    const outShape = tf.tidy(() => tf.conv2d(tf.zeros(c.x) as tf.Tensor4D, tf.zeros(c.f) as tf.Tensor4D, c.stride, c.pad).shape);
    const dyv = seeded(outShape.reduce((a, b) => a * b), 3);
    const ours = await convGrads(c, xv, wv, dyv);
    const ref = await onBackend('cpu', () => convGrads(c, xv, wv, dyv));
    expect(relError(ours.dx, ref.dx)).toBeLessThan(TOL);
    expect(relError(ours.dw, ref.dw)).toBeLessThan(TOL);
  });

  it.each([
    [false, false],
    [true, false],
    [false, true],
    [true, true],
  ])('matMul with transposeA=%s transposeB=%s matches cpu', async (ta, tb) => {
    const av = seeded(6 * 5 * 7, 4);
    const bv = seeded(6 * 7 * 4, 5);
    const run = (): Float32Array =>
      tf.tidy(() => {
        const a = tf.tensor3d(av, ta ? [6, 7, 5] : [6, 5, 7]);
        const b = tf.tensor3d(bv, tb ? [6, 4, 7] : [6, 7, 4]);
        return tf.matMul(a, b, ta, tb).dataSync() as Float32Array;
      });
    expect(relError(run(), await onBackend('cpu', run))).toBeLessThan(TOL);
  });

  it.each([
    [[1, 1, 1, 5], [2, 3, 4, 1]],
    [[2, 1, 3], [1, 4, 1]],
    [[2, 3], [2, 2]],
  ])('tile %j by %j matches cpu', async (shape, reps) => {
    const v = seeded(shape.reduce((a, b) => a * b), 6);
    const run = (): Float32Array => tf.tidy(() => tf.tile(tf.tensor(v, shape), reps).dataSync() as Float32Array);
    expect(run()).toEqual(await onBackend('cpu', run));
  });

  it('clone and same-dtype cast share data safely; other casts still convert', () => {
    const before = tf.memory().numTensors;
    const x = tf.tensor1d([1.5, -2.25, 3]);
    const c = tf.clone(x);
    const f = tf.cast(x, 'float32');
    c.dispose();
    expect(Array.from(f.dataSync())).toEqual([1.5, -2.25, 3]);
    f.dispose();
    expect(Array.from(x.dataSync())).toEqual([1.5, -2.25, 3]);
    const i = tf.cast(x, 'int32');
    expect(i.dtype).toBe('int32');
    expect(Array.from(i.dataSync())).toEqual([1, -2, 3]);
    tf.dispose([x, i]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('leaves no tensors behind', () => {
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      const x = tf.randomNormal([2, 8, 8, 3]) as tf.Tensor4D;
      const w = tf.randomNormal([3, 3, 3, 4]) as tf.Tensor4D;
      tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, 'same')))([x, w]);
    });
    expect(tf.memory().numTensors).toBe(before);
  });
});
