import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from './backend.js';
import { computeGradient } from './gradient.js';
import { NATIVE, nativeAddon, type NativeAddon } from './native-backend.js';
import { normRelError, onBackend, relError, seeded, syntheticBatch } from './test-util.js';
import { forward } from './forward.js';
import { buildModel } from './zoo.js';
import { mulberry32 } from '../data/random.js';
import * as tfl from '@tensorflow/tfjs-layers';

// The native backend (wasm with the addon's kernels) against tfjs' reference cpu kernels, on random
// inputs; max abs difference <= 1e-4 x max |reference| (float32 sums in another order).
// scripts/setup.sh builds the addon where Debian's libdnnl-dev installs; without it these
// tests are skipped, and say why.
const TOL = 1e-4;
// The compute issue's acceptance, besides: the norm of the difference over the norm of the cpu
// result, forward within 1e-5 and each gradient within 1e-4 (a norm alone would let a few wrong
// elements through; the largest difference alone would not see many small ones).
const FORWARD = 1e-5, GRADIENT = 1e-4;
function expectMatch(ours: ArrayLike<number>, ref: ArrayLike<number>, normTol: number, what = ''): void {
  expect(normRelError(ours, ref), `${what} norm`).toBeLessThan(normTol);
  expect(relError(ours, ref), `${what} largest`).toBeLessThan(TOL);
}
const addon = nativeAddon();
if (addon instanceof Error) console.warn(`native backend tests skipped: ${addon.message}`);

type Shape4 = [number, number, number, number];
interface Case { x: Shape4; f: Shape4; stride: number; pad: 'same' | 'valid'; dilation?: number }

const cases: Case[] = [
  { x: [2, 7, 7, 3], f: [3, 3, 3, 4], stride: 1, pad: 'same' },
  { x: [2, 7, 7, 3], f: [3, 3, 3, 4], stride: 1, pad: 'valid' },
  { x: [2, 8, 8, 3], f: [3, 3, 3, 4], stride: 2, pad: 'same' },
  { x: [3, 9, 6, 5], f: [3, 2, 5, 2], stride: 2, pad: 'valid' },
  { x: [2, 7, 7, 4], f: [1, 1, 4, 6], stride: 2, pad: 'valid' },
  { x: [1, 28, 28, 1], f: [5, 5, 1, 3], stride: 2, pad: 'same' },
  { x: [4, 14, 14, 8], f: [3, 3, 8, 16], stride: 1, pad: 'same' },
  // 1x1 maps, where each output reads one tap of the filter (run as a matrix product): the
  // centre of a 3x3 or a 5x5 with stride 2, the corner of an even 'same' kernel, a 1x1 kernel.
  { x: [3, 1, 1, 5], f: [3, 3, 5, 7], stride: 1, pad: 'same' },
  { x: [2, 1, 1, 4], f: [5, 5, 4, 3], stride: 2, pad: 'same' },
  { x: [2, 1, 1, 4], f: [2, 2, 4, 3], stride: 1, pad: 'same' },
  { x: [2, 1, 1, 3], f: [1, 1, 3, 2], stride: 1, pad: 'valid' },
  // 3x3, stride 1, 64 channels or more on both sides: Winograd's F(4x4, 3x3) on blocked copies
  // of the activations. An 8x8 map, an odd oblong one with channels not a multiple of 16, a
  // 'valid' one, and the smallest map it takes (3x3).
  { x: [2, 8, 8, 64], f: [3, 3, 64, 64], stride: 1, pad: 'same' },
  { x: [3, 7, 5, 72], f: [3, 3, 72, 64], stride: 1, pad: 'same' },
  { x: [2, 9, 6, 64], f: [3, 3, 64, 80], stride: 1, pad: 'valid' },
  { x: [4, 3, 3, 64], f: [3, 3, 64, 96], stride: 1, pad: 'same' },
];

// And shapes drawn by a seeded generator (the same every run): batch 1-4, sides 3-12, 1-9
// channels in and out, square or oblong kernels of 1-5 that fit, stride 1 or 2, either padding.
const draw = mulberry32(2026);
const pick = (lo: number, hi: number) => lo + Math.floor(draw() * (hi - lo + 1));
for (let i = 0; i < 12; i++) {
  const h = pick(3, 12), w = pick(3, 12), fh = pick(1, Math.min(5, h)), fw = draw() < 0.5 ? Math.min(fh, w) : pick(1, Math.min(5, w));
  const channels = pick(1, 9);
  cases.push({ x: [pick(1, 4), h, w, channels], f: [fh, fw, channels, pick(1, 9)], stride: pick(1, 2), pad: draw() < 0.5 ? 'same' : 'valid' });
}

const size = (s: number[]) => s.reduce((a, b) => a * b, 1);

function convAndGrads(c: Case, xv: Float32Array, wv: Float32Array, dyv: Float32Array): { y: Float32Array; dx: Float32Array; dw: Float32Array } {
  return tf.tidy(() => {
    const x = tf.tensor4d(xv, c.x);
    const w = tf.tensor4d(wv, c.f);
    const y = tf.conv2d(x, w, c.stride, c.pad);
    const dy = tf.tensor(dyv, y.shape);
    const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.stride, c.pad), dy)))([x, w]);
    return { y: y.dataSync() as Float32Array, dx: dx.dataSync() as Float32Array, dw: dw.dataSync() as Float32Array };
  });
}

describe.skipIf(addon instanceof Error)('native backend (oneDNN)', () => {
  beforeAll(async () => {
    expect(await initBackend('native')).toBe(NATIVE);
  });

  it.each(cases)('conv2d and its gradients match cpu: x $x, f $f, stride $stride, $pad', async (c) => {
    const xv = seeded(size(c.x), 1), wv = seeded(size(c.f), 2);
    const outShape = tf.tidy(() => tf.conv2d(tf.zeros(c.x) as tf.Tensor4D, tf.zeros(c.f) as tf.Tensor4D, c.stride, c.pad).shape);
    const dyv = seeded(size(outShape), 3);
    const ours = convAndGrads(c, xv, wv, dyv);
    const ref = await onBackend('cpu', () => convAndGrads(c, xv, wv, dyv));
    expectMatch(ours.y, ref.y, FORWARD);
    expectMatch(ours.dx, ref.dx, GRADIENT);
    expectMatch(ours.dw, ref.dw, GRADIENT);
  });

  it('a dilated convolution and the fused ones (bias and relu, bias alone, relu alone, as oneDNN applies them) match cpu', async () => {
    const xv = seeded(2 * 9 * 9 * 3, 4), wv = seeded(3 * 3 * 3 * 5, 5), bv = seeded(5, 6);
    const run = () => tf.tidy(() => {
      const x = tf.tensor4d(xv, [2, 9, 9, 3]), w = tf.tensor4d(wv, [3, 3, 3, 5]);
      const dilated = tf.conv2d(x, w, 1, 'same', 'NHWC', 2);
      const fused = (bias: boolean, activation: 'relu' | 'linear') => tf.fused.conv2d({ x, filter: w, strides: 1, pad: 'valid', ...(bias ? { bias: tf.tensor1d(bv) } : {}), activation });
      return [dilated, fused(true, 'relu'), fused(true, 'linear'), fused(false, 'relu')].map((t) => t.dataSync() as Float32Array);
    });
    const ours = run();
    const ref = await onBackend('cpu', run);
    for (const [i, y] of ours.entries()) expectMatch(y, ref[i]!, FORWARD, `output ${i}`);
    // The ReLU cut something: the variants differ.
    expect(relError(ours[1]!, ours[2]!)).toBeGreaterThan(TOL);
  });

  it('picks Winograd for 3x3 convolutions of 64 channels or more at stride 1 where the CPU has AVX-512 and its scratchpad is small, direct ones otherwise, a matrix product on a 1x1 map', () => {
    const a = addon as NativeAddon;
    const same = [1, 1, 1, 1, 1, 1, 1, 1];
    const avx512 = /\bavx512f\b/.test(readFileSync('/proc/cpuinfo', 'utf8'));
    const kernel = (x: Shape4, f: Shape4, y: Shape4, g = same) => a.conv2dKernel(x, f, y, g);
    if (avx512) expect(kernel([2, 8, 8, 64], [3, 3, 64, 64], [2, 8, 8, 64])).toMatch(/wino/);
    expect(kernel([2, 8, 8, 32], [3, 3, 32, 64], [2, 8, 8, 64])).not.toMatch(/wino/); // fewer channels in
    expect(kernel([2, 8, 8, 64], [3, 3, 64, 32], [2, 8, 8, 32])).not.toMatch(/wino/); // fewer out
    expect(kernel([2, 2, 2, 64], [3, 3, 64, 64], [2, 2, 2, 64])).not.toMatch(/wino/); // a map under 3x3
    expect(kernel([2, 8, 8, 64], [3, 3, 64, 64], [2, 4, 4, 64], [2, 2, 1, 1, 0, 0, 1, 1])).not.toMatch(/wino/); // stride 2
    expect(kernel([2, 8, 8, 64], [3, 3, 64, 64], [2, 4, 4, 64], [1, 1, 2, 2, 0, 0, 0, 0])).not.toMatch(/wino/); // dilated
    // A 512x512 filter's transformed copy on a small map: a scratchpad 50x the activations.
    expect(kernel([2, 3, 3, 512], [3, 3, 512, 512], [2, 3, 3, 512])).not.toMatch(/wino/);
    expect(kernel([3, 1, 1, 64], [3, 3, 64, 64], [3, 1, 1, 64])).toBe('matmul');
  });

  // The fused convolution's bias and ReLU against cpu, on a path of the addon's own.
  async function expectFusedLikeCpu(xShape: Shape4, fShape: Shape4, seed: number): Promise<void> {
    const xv = seeded(size(xShape), seed), wv = seeded(size(fShape), seed + 1), bv = seeded(fShape[3], seed + 2);
    const run = () => tf.tidy(() => {
      const x = tf.tensor4d(xv, xShape), filter = tf.tensor4d(wv, fShape), bias = tf.tensor1d(bv);
      return (['relu', 'linear'] as const).map((activation) => tf.fused.conv2d({ x, filter, strides: 1, pad: 'same', bias, activation }).dataSync() as Float32Array);
    });
    const ours = run();
    const ref = await onBackend('cpu', run);
    for (const [i, y] of ours.entries()) expectMatch(y, ref[i]!, FORWARD, `output ${i}`);
    expect(relError(ours[0]!, ours[1]!)).toBeGreaterThan(TOL);
  }

  it('the fused Winograd convolution adds the bias and cuts at zero like cpu', async () => {
    await expectFusedLikeCpu([2, 6, 6, 64], [3, 3, 64, 64], 10);
  });

  it('the fused convolution on a 1x1 map (a matrix product with the filter\'s centre) adds the bias and cuts at zero like cpu', async () => {
    await expectFusedLikeCpu([4, 1, 1, 6], [3, 3, 6, 5], 7);
  });

  it.each<[number[], number | number[], boolean]>([
    [[4, 5, 6, 7], [0, 1, 2], false],
    [[4, 5, 6, 7], [2, 0, 1], true],
    [[300, 9], 0, false],
    [[3, 4, 5], [0, 1, 2], false],
    [[3, 4, 5], [0, 1, 2], true],
    [[3, 4, 5], [1, 2], false], // not the leading axes: wasm's own kernel
  ])('sum and mean of shape %j over %j (keepDims %s) match cpu', async (shape, axis, keepDims) => {
    const v = seeded(size(shape), 7);
    const run = () => tf.tidy(() => {
      const x = tf.tensor(v, shape);
      const s = tf.sum(x, axis, keepDims), m = tf.mean(x, axis, keepDims);
      return [s.shape, s.dataSync() as Float32Array, m.dataSync() as Float32Array] as const;
    });
    const [shapeOurs, s, m] = run();
    const [shapeRef, rs, rm] = await onBackend('cpu', run);
    expect(shapeOurs).toEqual(shapeRef);
    expectMatch(s, rs, FORWARD);
    expectMatch(m, rm, FORWARD);
  });

  it.each<[number[], number, number, 'same' | 'valid']>([
    [[2, 8, 8, 3], 2, 2, 'valid'],
    [[2, 7, 7, 5], 2, 2, 'valid'],
    [[2, 7, 7, 5], 3, 2, 'same'],
    [[1, 5, 6, 2], 3, 1, 'same'],
  ])('the max-pool gradient of %j (window %i, stride %i, %s) matches cpu', async (shape, window, stride, pad) => {
    const v = seeded(size(shape), 8);
    const run = () => tf.tidy(() => {
      const x = tf.tensor4d(v, shape as Shape4);
      const yShape = tf.maxPool(x, window, stride, pad).shape;
      const dy = tf.reshape(tf.range(1, 1 + size(yShape)), yShape); // a distinct value per output
      return tf.grad((a: tf.Tensor) => tf.sum(tf.mul(tf.maxPool(a as tf.Tensor4D, window, stride, pad), dy)))(x).dataSync() as Float32Array;
    });
    expectMatch(run(), await onBackend('cpu', run), GRADIENT);
  });

  it.each<[number[][], number]>([
    [[[2, 3, 3, 5], [2, 3, 3, 2]], -1],
    [[[2, 3, 3, 5], [2, 3, 3, 2], [2, 3, 3, 1]], 3],
    [[[2, 4, 3], [2, 1, 3]], 1],
    [[[3, 2], [1, 2]], 0],
  ])('concat of %j on axis %i and its gradient (a split) match cpu', async (shapes, axis) => {
    const vs = shapes.map((sh, i) => seeded(size(sh), 20 + i));
    const run = () => tf.tidy(() => {
      const xs = shapes.map((sh, i) => tf.tensor(vs[i]!, sh));
      const y = tf.concat(xs, axis);
      const dy = tf.reshape(tf.range(1, 1 + y.size), y.shape);
      const grads = tf.grads((...a: tf.Tensor[]) => tf.sum(tf.mul(tf.concat(a, axis), dy)))(xs);
      return [y.dataSync() as Float32Array, ...grads.map((g) => g.dataSync() as Float32Array)];
    });
    const ours = run(), ref = await onBackend('cpu', run);
    ours.forEach((o, i) => expectMatch(o, ref[i]!, i === 0 ? FORWARD : GRADIENT)); // the concat, then its gradients
  });

  it.each<[number[], number[] | number, number]>([
    [[2, 3, 3, 7], [5, 2], -1],
    [[2, 3, 3, 6], 3, 3],
    [[4, 5, 2], [1, 3, 1], 1],
    [[6, 2], [2, 4], 0],
  ])('split of %j into %j on axis %i matches cpu', async (shape, splits, axis) => {
    const v = seeded(size(shape), 30);
    const run = () => tf.tidy(() => tf.split(tf.tensor(v, shape), splits, axis).map((t) => [t.shape, t.dataSync() as Float32Array] as const));
    const ours = run(), ref = await onBackend('cpu', run);
    expect(ours.map((o) => o[0])).toEqual(ref.map((r) => r[0]));
    ours.forEach((o, i) => expectMatch(o[1], ref[i]![1], FORWARD));
  });

  it.each<[number[], number, number, 'same' | 'valid']>([
    [[2, 8, 8, 3], 2, 2, 'valid'],
    [[2, 7, 7, 5], 2, 2, 'valid'],
    [[2, 7, 7, 5], 3, 2, 'same'],
    [[1, 5, 6, 2], 3, 1, 'same'],
  ])('the average-pool gradient of %j (window %i, stride %i, %s) matches cpu', async (shape, window, stride, pad) => {
    const v = seeded(size(shape), 31);
    const run = () => tf.tidy(() => {
      const x = tf.tensor4d(v, shape as Shape4);
      const yShape = tf.avgPool(x, window, stride, pad).shape;
      const dy = tf.reshape(tf.range(1, 1 + size(yShape)), yShape);
      return tf.grad((a: tf.Tensor) => tf.sum(tf.mul(tf.avgPool(a as tf.Tensor4D, window, stride, pad), dy)))(x).dataSync() as Float32Array;
    });
    expectMatch(run(), await onBackend('cpu', run), GRADIENT);
  });

  it.each<[number[], number[], boolean, boolean]>([
    [[64, 30], [30, 10], false, false], // a Dense layer's product reaches the kernel as rank 2
    [[64, 30], [64, 10], true, false],
    [[64, 10], [30, 10], false, true],
    [[1, 64, 30], [1, 30, 10], false, false],
    [[1, 30, 64], [1, 30, 10], true, false], // a Dense layer's weight gradient, x^T dy
    [[1, 64, 10], [1, 30, 10], false, true], // its input gradient, dy W^T
    [[3, 5, 4], [3, 5, 6], true, false],
    [[3, 4, 5], [1, 6, 5], false, true], // b broadcast over a's batch
    [[1, 5, 4], [2, 4, 7], false, false], // a broadcast over b's batch
  ])('batchMatMul of %j and %j (transposeA %s, transposeB %s) matches cpu', async (as, bs, ta, tb) => {
    const av = seeded(size(as), 40), bv = seeded(size(bs), 41);
    const run = () => tf.tidy(() => {
      const y = tf.matMul(tf.tensor(av, as), tf.tensor(bv, bs), ta, tb);
      return [y.shape, y.dataSync() as Float32Array] as const;
    });
    const ours = run(), ref = await onBackend('cpu', run);
    expect(ours[0]).toEqual(ref[0]);
    expectMatch(ours[1], ref[1], FORWARD);
  });

  it('a cnn gradient matches the cpu backend, and leaves no tensors behind', async () => {
    const { images, labels } = syntheticBatch(16, 2);
    const before = tf.memory().numTensors;
    const gradientOf = () => {
      const model = buildModel('cnn', 0.5, 7);
      try { return computeGradient(model, images, labels); } finally { model.dispose(); }
    };
    const ours = gradientOf();
    const ref = await onBackend('cpu', gradientOf);
    expectMatch(ours.gradient, ref.gradient, GRADIENT);
    expect(Math.abs(ours.loss - ref.loss)).toBeLessThan(1e-5 * Math.abs(ref.loss));
    expect(ours.correct).toBe(ref.correct);
    expect(tf.memory().numTensors).toBe(before);
  });

  // Batch norm in training runs as one kernel here (batch-norm.ts) and as tfjs-layers' own
  // composition on cpu: output, the three gradients and the moving statistics must agree.
  it.each<[number[], number, boolean]>([
    [[3, 5, 4, 7], 0, false],
    [[2, 3, 3, 1], 0.9, false],
    [[10, 6], 0.5, false],
    [[3, 5, 4, 7], 0, true],
    [[10, 6], 0.5, true],
  ])('a batch-norm layer in training, input %j, momentum %d, ReLU after it %s, matches cpu', async (shape, momentum, relu) => {
    const xv = seeded(size(shape), 9).map((v) => 3 * v + 1);
    const dyv = seeded(size(shape), 10);
    const channels = shape[shape.length - 1]!;
    const run = () => {
      const input = tfl.input({ shape: shape.slice(1) });
      const normed = tfl.layers.batchNormalization({ axis: -1, momentum, epsilon: 1e-3 }).apply(input) as tfl.SymbolicTensor;
      const model = tfl.model({ inputs: input, outputs: relu ? tfl.layers.activation({ activation: 'relu' }).apply(normed) as tfl.SymbolicTensor : normed });
      const [gamma, beta, movingMean, movingVariance] = model.getWeights().map((w) => w.shape);
      model.setWeights([tf.tensor(seeded(channels, 11).map((v) => v + 1.5), gamma), tf.tensor(seeded(channels, 12), beta),
        tf.tensor(seeded(channels, 13), movingMean), tf.tensor(seeded(channels, 14).map((v) => v + 2), movingVariance)]);
      try {
        return tf.tidy(() => {
          const x = tf.tensor(xv, shape), dy = tf.tensor(dyv, shape);
          const vars = model.trainableWeights.map((w) => (w as unknown as { val: tf.Variable }).val);
          let y: tf.Tensor | undefined;
          const { grads } = tf.variableGrads(() => {
            y = tf.keep(forward(model, x, true));
            return tf.sum(tf.mul(y, dy)) as tf.Scalar;
          }, vars);
          const dx = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(forward(model, a, true), dy)))(x);
          return {
            y: y!.dataSync() as Float32Array, dx: dx.dataSync() as Float32Array,
            dgamma: grads[vars[0]!.name]!.dataSync() as Float32Array, dbeta: grads[vars[1]!.name]!.dataSync() as Float32Array,
            moving: model.getWeights().slice(2).map((w) => w.dataSync() as Float32Array),
          };
        });
      } finally { model.dispose(); }
    };
    const ours = run();
    const ref = await onBackend('cpu', run);
    expectMatch(ours.y, ref.y, FORWARD);
    expectMatch(ours.dx, ref.dx, GRADIENT);
    expectMatch(ours.dgamma, ref.dgamma, GRADIENT);
    expectMatch(ours.dbeta, ref.dbeta, GRADIENT);
    ours.moving.forEach((m, i) => expectMatch(m, ref.moving[i]!, FORWARD));
  });

  it.each(['vgg11', 'resnet18', 'densenet121', 'mlp'])('a %s gradient (narrow) matches the cpu backend', async (name) => {
    const { images, labels } = syntheticBatch(4, 3);
    const gradientOf = () => {
      const model = buildModel(name, 0.125, 5);
      try { return computeGradient(model, images, labels); } finally { model.dispose(); }
    };
    const ours = gradientOf();
    const ref = await onBackend('cpu', gradientOf);
    expectMatch(ours.gradient, ref.gradient, GRADIENT);
    expect(Math.abs(ours.loss - ref.loss)).toBeLessThan(1e-5 * Math.abs(ref.loss));
  });

  it('a case ours does not handle runs on wasm\'s own kernel, noted once', async () => {
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => {});
    try {
      const xv = seeded(2 * 6 * 6 * 3, 15), wv = seeded(3 * 3 * 3 * 4, 16), bv = seeded(4, 17);
      const run = () => tf.tidy(() => {
        const x = tf.tensor4d(xv, [2, 6, 6, 3]), w = tf.tensor4d(wv, [3, 3, 3, 4]);
        return tf.fused.conv2d({ x, filter: w, strides: 1, pad: 'same', bias: tf.tensor1d(bv), activation: 'elu' }).dataSync() as Float32Array;
      });
      const ours = run();
      run();
      expectMatch(ours, await onBackend('cpu', run), FORWARD);
      const notes = warn.mock.calls.map((c) => String(c[0])).filter((m) => m.startsWith('native backend:'));
      expect(notes).toEqual(["native backend: FusedConv2D with activation elu runs on wasm's own kernel"]);
    } finally {
      warn.mockRestore();
    }
  });

  it('a wrong length is a clear error, not a crash', () => {
    if (addon instanceof Error) return;
    const x = new Float32Array(9), w = new Float32Array(4), y = new Float32Array(4);
    expect(() => addon.conv2d(x, [1, 3, 3, 2], w, [2, 2, 1, 1], y, [1, 2, 2, 1], [1, 1, 1, 1, 0, 0, 0, 0])).toThrow('x has 9 elements, its shape says 18');
    expect(() => addon.conv2d(x, [1, 3, 3, 1], w, [2, 2, 1, 1], y, [1, 2, 2, 1], [1, 1, 1, 1, 5, 0, 0, 0])).toThrow(/^conv2d: oneDNN: could not create/);
    const c = new Float32Array(3);
    expect(() => addon.batchNormTraining(x, 3, 3, c, c, 1e-3, new Float32Array(8), c, c, false)).toThrow('y has 8 elements, its shape says 9');
    expect(() => addon.batchNormTraining(x, 0, 3, c, c, 1e-3, x, c, c, false)).toThrow('batchNormTraining: rows and cols must be at least 1');
    expect(() => addon.batchNormTrainingGrad(x, x, 3, 3, c, c, c, NaN, x, c, c, null)).toThrow('batchNormTrainingGrad: epsilon must be finite and >= 0');
    expect(() => addon.batchMatMul(x, [1, 3, 3], w, [1, 2, 2], y, false, false)).toThrow('batchMatMul: inner dimensions differ (3 and 2)');
    expect(() => addon.batchMatMul(x, [1, 3, 3], x, [1, 3, 3], y, false, false)).toThrow('out has 4 elements, its shape says 9');
    expect(() => addon.batchMatMul(x, [3, 1, 3], x, [2, 3, 1], y, false, false)).toThrow('batchMatMul: batches 3 and 2 neither match nor broadcast');
  });

  // Each against cpu, NaN for NaN; `fn` runs in a tidy on both backends.
  async function expectLikeCpu(fn: () => tf.Tensor | tf.Tensor[], normTol = FORWARD): Promise<void> {
    const run = () => tf.tidy(() => [fn()].flat().map((t) => [t.shape, Array.from(t.dataSync())] as const));
    const ours = run(), ref = await onBackend('cpu', run);
    expect(ours.map((o) => o[0])).toEqual(ref.map((r) => r[0]));
    ours.forEach(([, v], i) => {
      const r = ref[i]![1];
      expect(v.map(Number.isNaN)).toEqual(r.map(Number.isNaN));
      if (r.length > 0) expectMatch(v.map((e) => (Number.isNaN(e) ? 0 : e)), r.map((e) => (Number.isNaN(e) ? 0 : e)), normTol);
    });
  }
  const rnd = (shape: number[], seed: number) => tf.tensor(seeded(size(shape), seed), shape);

  it.each<[string, Shape4, 'same' | 'valid']>([
    ['a 3x3 filter, \'same\'', [3, 3, 3, 4], 'same'],
    ['a 1x1 filter, \'valid\'', [1, 1, 3, 4], 'valid'],
  ])('the filter gradient of a conv on a 1x1 map with an empty batch (%s) is zero, as on cpu (oneDNN divided by zero)', async (_, f, pad) => {
    await expectLikeCpu(() => tf.grad((w: tf.Tensor) => tf.sum(tf.conv2d(tf.zeros([0, 1, 1, 3]) as tf.Tensor4D, w as tf.Tensor4D, 1, pad)))(rnd(f, 50)), GRADIENT);
  });

  it('a fused conv adds a bias tfjs broadcasts along the width ([C, 1] with W = C) as cpu does', async () => {
    for (const activation of ['linear', 'relu'] as const) {
      await expectLikeCpu(() => tf.fused.conv2d({ x: rnd([1, 3, 4, 2], 51) as tf.Tensor4D, filter: rnd([1, 1, 2, 4], 52) as tf.Tensor4D, strides: 1, pad: 'same', bias: rnd([4, 1], 53), activation }));
    }
    await expectLikeCpu(() => tf.fused.conv2d({ x: rnd([2, 3, 4, 2], 51) as tf.Tensor4D, filter: rnd([3, 3, 2, 4], 52) as tf.Tensor4D, strides: 1, pad: 'same', bias: rnd([1, 1, 4], 53), activation: 'relu' }));
  });

  it.each<[string, () => tf.Tensor]>([
    ['conv2d, dimRoundingMode ceil', () => tf.conv2d(rnd([1, 6, 6, 2], 54) as tf.Tensor4D, rnd([3, 3, 2, 2], 55) as tf.Tensor4D, 2, 0, 'NHWC', 1, 'ceil')],
    ['conv2d, dimRoundingMode round', () => tf.conv2d(rnd([1, 6, 6, 2], 54) as tf.Tensor4D, rnd([3, 3, 2, 2], 55) as tf.Tensor4D, 2, 0, 'NHWC', 1, 'round')],
    ['Conv2DBackpropFilter, dimRoundingMode ceil', () => tf.engine().runKernel('Conv2DBackpropFilter', { x: rnd([1, 6, 6, 2], 54), dy: rnd([1, 3, 3, 3], 56) },
      { strides: [2, 2], pad: 0, dataFormat: 'NHWC', dimRoundingMode: 'ceil', filterShape: [3, 3, 2, 3] }) as tf.Tensor],
    ['conv2dTranspose to [1, 8, 8, 3], stride 2, valid', () => tf.conv2dTranspose(rnd([1, 4, 4, 2], 54) as tf.Tensor4D, rnd([3, 3, 3, 2], 55) as tf.Tensor4D, [1, 8, 8, 3], 2, 'valid')],
    ['conv2d with no input channels', () => tf.conv2d(tf.zeros([1, 4, 4, 0]) as tf.Tensor4D, tf.zeros([3, 3, 0, 2]) as tf.Tensor4D, 1, 'same')],
    ['fused conv2d with no input channels, bias and relu', () => tf.fused.conv2d({ x: tf.zeros([1, 4, 4, 0]) as tf.Tensor4D, filter: tf.zeros([3, 3, 0, 3]) as tf.Tensor4D, strides: 1, pad: 'same', bias: tf.tensor1d([1, -2, 3]), activation: 'relu' })],
    ['Conv2DBackpropInput with no output channels', () => tf.engine().runKernel('Conv2DBackpropInput', { dy: tf.zeros([1, 4, 4, 0]), filter: tf.zeros([3, 3, 2, 0]) },
      { strides: [1, 1], pad: 'same', dataFormat: 'NHWC', inputShape: [1, 4, 4, 2] }) as tf.Tensor],
    ['a matrix product over an empty inner dimension', () => tf.matMul(tf.zeros([3, 0]), tf.zeros([0, 4]))],
  ])('%s computes as on cpu', async (_, fn) => {
    await expectLikeCpu(fn);
  });

  it('an error from the addon gives its output back and runs the case on wasm\'s own kernel, noted once', async () => {
    const a = addon as NativeAddon;
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => {});
    const conv2d = vi.spyOn(a, 'conv2d').mockImplementation(() => { throw new Error('conv2d: oneDNN: refused'); });
    try {
      const backend = tf.backend() as unknown as { numDataIds(): number };
      const x = rnd([1, 6, 6, 2], 57), w = rnd([3, 3, 2, 2], 58);
      const before = backend.numDataIds();
      for (let i = 0; i < 3; i++) tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, 'same').dispose();
      expect(backend.numDataIds()).toBe(before);
      expect(conv2d).toHaveBeenCalledTimes(3);
      const notes = warn.mock.calls.map((c) => String(c[0])).filter((m) => m.startsWith('native backend:'));
      expect(notes).toEqual(["native backend: Conv2D with an error from the addon (conv2d: oneDNN: refused) runs on wasm's own kernel"]);
      tf.dispose([x, w]);
    } finally {
      conv2d.mockRestore();
      warn.mockRestore();
    }
    await expectLikeCpu(() => tf.conv2d(rnd([1, 6, 6, 2], 57) as tf.Tensor4D, rnd([3, 3, 2, 2], 58) as tf.Tensor4D, 1, 'same'));
  });

  it.each<[number[], number]>([[[3, 0], 0], [[0, 3], 0], [[2, 0, 3], 0]])('sum and mean of zeros(%j) over axis %i match cpu', async (shape, axis) => {
    await expectLikeCpu(() => [tf.sum(tf.zeros(shape), axis), tf.mean(tf.zeros(shape), axis), tf.sum(tf.zeros(shape), [0, 1].slice(0, shape.length - 1), true)]);
  });

  it.each<[string, number[]]>([
    ['only -Infinity', [-Infinity, -Infinity, -Infinity, -Infinity]],
    ['a NaN first', [NaN, 1, 2, 3]],
    ['a NaN later', [1, NaN, 3, 2]],
    ['a NaN and -Infinity', [-Infinity, NaN, -Infinity, NaN]],
  ])('the max-pool gradient of a window with %s goes where cpu sends it', async (_, values) => {
    await expectLikeCpu(() => {
      const x = tf.tensor4d(values, [1, 2, 2, 1]);
      return tf.engine().runKernel('MaxPoolGrad', { dy: tf.ones([1, 1, 1, 1]), input: x, output: tf.maxPool(x, 2, 2, 'valid') }, { filterSize: 2, strides: 2, pad: 'valid' }) as tf.Tensor;
    });
  });

  it.each<['ceil' | 'round', number]>([['ceil', 3], ['round', 2]])('the average-pool gradient with dimRoundingMode %s matches cpu (which ignores it)', async (mode, stride) => {
    await expectLikeCpu(() => {
      const x = rnd([2, 7, 6, 3], 59);
      const y = tf.avgPool(x as tf.Tensor4D, 3, stride, 0, mode);
      return tf.engine().runKernel('AvgPoolGrad', { dy: rnd(y.shape, 60), input: x }, { filterSize: 3, strides: stride, pad: 0, dimRoundingMode: mode }) as tf.Tensor;
    }, GRADIENT);
  });

  // The forward against tfjs's composition on cpu; its gradient there throws on an empty batch
  // (a reshape in Sub's gradient), so ours is held to what the sums over no rows are: 0.
  it.each<[number[]]>([[[0, 3, 3, 4]], [[2, 3, 3, 0]], [[0, 5]]])('batch norm in training of an empty %j gives what tfjs\'s composition gives on cpu', async (shape) => {
    const channels = shape[shape.length - 1]!;
    const x = () => tf.zeros(shape), gamma = () => tf.ones([channels]), beta = () => tf.zeros([channels]);
    const run = (fn: () => tf.Tensor[]) => tf.tidy(() => fn().map((t) => [t.shape, Array.from(t.dataSync())] as const));
    const mine = run(() => tf.engine().runKernel('PeerlessBatchNormTraining', { x: x(), gamma: gamma(), beta: beta() }, { epsilon: 1e-3, relu: false }) as tf.Tensor[]);
    expect(mine).toEqual(await onBackend('cpu', () => run(() => {
      const { mean, variance } = tf.moments(x(), shape.map((_, i) => i).slice(0, -1));
      return [tf.batchNorm(x(), mean, variance, beta(), gamma(), 1e-3), mean, variance];
    })));
    const grads = run(() => tf.grads((a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) =>
      tf.sum((tf.engine().runKernel('PeerlessBatchNormTraining', { x: a, gamma: g, beta: b }, { epsilon: 1e-3, relu: true }) as tf.Tensor[])[0]!))([x(), gamma(), beta()]));
    expect(grads).toEqual([[shape, []], [[channels], new Array(channels).fill(0)], [[channels], new Array(channels).fill(0)]]);
  });

  // Calls with shapes no kernel of ours makes, in a child process so that a crash fails the test
  // and not the runner: each is a one-line error, or fills its output.
  it('direct calls with crafted shapes throw a one-line error or compute, and never crash the process', () => {
    const path = Object.keys(createRequire(import.meta.url).cache).find((k) => k.endsWith('peerless_native.node'));
    expect(path).toBeDefined();
    const E = 'new Float32Array(0)', T32 = 2 ** 32, T30 = 2 ** 30;
    const calls: [string, 'threw' | 'returned'][] = [
      [`a.concatRows([${E}, ${E}], [${T32}, ${T32}], ${T32}, ${E})`, 'threw'],
      [`a.splitRows(${E}, ${T32}, [${T32}], [${E}])`, 'threw'],
      [`a.sumRows(${E}, 2 ** 62, 4, new Float32Array(4), 1)`, 'threw'],
      [`a.batchNormTraining(${E}, 2 ** 62, 4, new Float32Array(4), new Float32Array(4), 1e-3, ${E}, new Float32Array(4), new Float32Array(4), false)`, 'threw'],
      [`a.batchMatMul(${E}, [1, ${T32}, ${T32}], ${E}, [${T32}, ${T32}, ${T32}], ${E}, false, false)`, 'threw'],
      [`a.batchMatMul(${E}, [${T30}, ${T30}, ${T30}], ${E}, [${T30}, ${T30}, ${T30}], ${E}, false, false)`, 'threw'],
      [`a.batchMatMul(new Float32Array(1), [1, -1, -1], new Float32Array(1), [1, -1, -1], new Float32Array(1), false, false)`, 'threw'],
      [`a.conv2d(${E}, [${T32}, ${T32}, 1, 1], new Float32Array(9), [3, 3, 1, 1], ${E}, [${T32}, ${T32}, 1, 1], [1, 1, 1, 1, 1, 1, 1, 1])`, 'threw'],
      [`a.conv2d(${E}, [${T30}, ${T30}, ${T30}, ${T30}], ${E}, [1, 1, 1, 1], ${E}, [1, 1, 1, 1], [1, 1, 1, 1, 0, 0, 0, 0])`, 'threw'],
      [`a.maxPoolGrad(${E}, [0, 1, 1, 2 ** 40], ${E}, [0, 1, 1, 2 ** 40], ${E}, [1, 1, 1, 1, 0, 0])`, 'threw'],
      [`a.conv2d(new Float32Array(1), [1, 1, 1, 1], new Float32Array(1), [1, 1, 1, 1], new Float32Array(1), [1, 1, 1, 1], ['a', 1, 1, 1, 0, 0, 0, 0])`, 'threw'],
      [`a.setThreads(0)`, 'threw'],
      [`a.conv2dBackpropFilter(${E}, [0, 1, 1, 3], ${E}, [0, 1, 1, 4], new Float32Array(108).fill(7), [3, 3, 3, 4], [1, 1, 1, 1, 1, 1, 1, 1])`, 'returned'],
      [`a.conv2dBackpropFilter(${E}, [0, 1, 1, 3], ${E}, [0, 1, 1, 4], new Float32Array(12), [1, 1, 3, 4], [1, 1, 1, 1, 0, 0, 0, 0])`, 'returned'],
      [`a.batchMatMul(${E}, [1, 0, 3], ${E}, [1, 0, 4], new Float32Array(12).fill(7), true, false)`, 'returned'],
    ];
    for (const [call, want] of calls) {
      const script = `const a = require(${JSON.stringify(path)});
        try { const r = ${call}; console.log('returned'); } catch (e) { console.log('threw ' + e.constructor.name + ': ' + e.message); }`;
      const child = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 300_000 });
      expect({ call, signal: child.signal, status: child.status }).toEqual({ call, signal: null, status: 0 });
      const line = child.stdout.trim();
      expect(line.split('\n'), call).toHaveLength(1);
      expect(line.split(' ')[0], `${call}: ${line}`).toBe(want);
    }
  });

  it('the empty-batch filter gradient and the empty inner product write zeros', () => {
    const a = addon as NativeAddon;
    const dw = new Float32Array(108).fill(7), out = new Float32Array(12).fill(7);
    a.conv2dBackpropFilter(new Float32Array(0), [0, 1, 1, 3], new Float32Array(0), [0, 1, 1, 4], dw, [3, 3, 3, 4], [1, 1, 1, 1, 1, 1, 1, 1]);
    a.batchMatMul(new Float32Array(0), [1, 0, 3], new Float32Array(0), [1, 0, 4], out, true, false);
    expect([...new Set(dw)]).toEqual([0]);
    expect([...new Set(out)]).toEqual([0]);
  });

  // Bound at load (-z now): a libdnnl without a symbol the addon uses fails the require, which
  // nativeAddon() turns into its one line, instead of killing the process at the first call.
  it.skipIf(spawnSync('cc', ['--version']).status !== 0)('a libdnnl lacking a symbol fails at load, not at the first convolution', () => {
    const path = Object.keys(createRequire(import.meta.url).cache).find((k) => k.endsWith('peerless_native.node'))!;
    const dir = mkdtempSync(join(tmpdir(), 'peerless-stub-'));
    try {
      expect(spawnSync('cc', ['-shared', '-fPIC', '-x', 'c', '-', '-o', join(dir, 'libdnnl.so.2')], { input: 'int peerless_stub_only;\n' }).status).toBe(0);
      const script = `try { const a = require(${JSON.stringify(path)}); console.log('loaded');
        a.conv2d(new Float32Array(9), [1, 3, 3, 1], new Float32Array(1), [1, 1, 1, 1], new Float32Array(9), [1, 3, 3, 1], [1, 1, 1, 1, 0, 0, 0, 0]); }
        catch (e) { console.log('threw ' + e.message.split('\\n')[0]); }`;
      const child = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', env: { ...process.env, LD_LIBRARY_PATH: dir }, timeout: 300_000 });
      expect(child.status).toBe(0);
      expect(child.stdout.trim()).toMatch(/^threw .*undefined symbol: dnnl_/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
