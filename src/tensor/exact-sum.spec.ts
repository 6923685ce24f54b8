import { describe, expect, it } from 'vitest';
import { initBackend } from '../model/backend.ts';
import { computeGradient } from '../model/gradient.ts';
import { syntheticBatch } from '../model/test-util.ts';
import { buildModel } from '../model/zoo.ts';
import { mulberry32 } from '../data/random.ts';
import { EXACT_LIMIT, exactMeanOf, firstTooLarge } from './exact-sum.ts';

/** Sum of |mean - float64 mean| over the elements, for the exact mean and for float32 in order. */
function errors(vectors: Float32Array[]): { exact: number; float32: number; worse: number } {
  const n = vectors[0].length, k = vectors.length;
  const exact = exactMeanOf(vectors);
  let e1 = 0, e2 = 0, worse = 0;
  for (let i = 0; i < n; i++) {
    let s64 = 0, s32 = 0;
    for (const v of vectors) { s64 += v[i]; s32 = Math.fround(s32 + v[i]); }
    const truth = s64 / k;
    const a = Math.abs(exact[i] - truth), b = Math.abs(Math.fround(s32 / k) - truth);
    e1 += a; e2 += b;
    if (a > b) worse++;
  }
  return { exact: e1, float32: e2, worse };
}

describe('exact, order-free sums', () => {
  it('any order gives the same bytes', () => {
    const r = mulberry32(3);
    const vs = Array.from({ length: 9 }, () => Float32Array.from({ length: 999 }, () => (r() - 0.5) * 10 ** (r() * 8 - 4)));
    const ref = Buffer.from(exactMeanOf(vs).buffer);
    for (let t = 0; t < 20; t++) {
      const shuffled = [...vs].sort(() => r() - 0.5);
      expect(Buffer.from(exactMeanOf(shuffled).buffer).equals(ref)).toBe(true);
    }
  });

  it('on the zoo\'s real gradients (cnn, 8 batches) it is at least as close to the float64 mean as float32 in order', async () => {
    await initBackend('wasm');
    const grads = Array.from({ length: 8 }, (_, b) => {
      const { images, labels } = syntheticBatch(32, 10 + b);
      return computeGradient(buildModel('cnn', 0.5, 7), images, labels).gradient;
    });
    const e = errors(grads);
    expect(e.exact).toBeLessThanOrEqual(e.float32);
    expect(e.worse).toBe(0);
  });

  it('on the dynamic range such gradients show (1e-10 to 1e2, 235 contributions) it is closer than float32', () => {
    const r = mulberry32(8);
    const vs = Array.from({ length: 235 }, () => Float32Array.from({ length: 2000 }, () => (r() < 0.5 ? -1 : 1) * 10 ** (r() * 12 - 10)));
    const e = errors(vs);
    expect(e.exact).toBeLessThan(e.float32 / 2);
    expect(e.worse).toBe(0);
  });

  it('finds values too large to sum exactly', () => {
    expect(firstTooLarge(Float32Array.from([1, -EXACT_LIMIT + 1, 3]))).toBe(-1);
    expect(firstTooLarge(Float32Array.from([1, 2, -EXACT_LIMIT]))).toBe(2);
  });
});
