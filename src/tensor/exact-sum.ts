/**
 * The module's exact, order-free sums (native/kernels.h) in JavaScript, byte for byte: the
 * outside-database baseline and the tests compute with these.
 *
 * An element x (|x| < 2^20) is split without rounding into x = (hi * 2^47 + lo) * 2^-74
 * (truncated below 2^-74), and hi and lo are added into two int64 planes: integer sums do
 * not depend on the order or grouping of the additions. The mean is rounded once from the
 * exact sum. The sum's bytes: `total` little-endian int64 of hi, then `total` of lo.
 */
export const EXACT_LIMIT = 2 ** 20;
export const EXACT_MAX_COUNT = 65_536;

const HI = 2 ** 27;
const LO = 2 ** 47;
const UNIT = 2 ** -74;
const TWO32 = 2 ** 32;

/** An empty exact sum of `total` elements, as 32-bit words (little-endian int64 pairs). */
export function emptyExactSum(total: number): Uint32Array {
  return new Uint32Array(total * 4);
}

/** Index of the first element too large to sum exactly, or -1. */
export function firstTooLarge(x: Float32Array): number {
  for (let i = 0; i < x.length; i++) if (Math.abs(x[i]) >= EXACT_LIMIT) return i;
  return -1;
}

/** Adds the integer v (|v| < 2^53) into the int64 at word pair i, wrapping as int64 does. */
function add64(w: Uint32Array, i: number, v: number): void {
  const vh = Math.floor(v / TWO32);
  const low = w[2 * i] + (v - vh * TWO32);
  const carry = low >= TWO32 ? 1 : 0;
  w[2 * i] = low - carry * TWO32;
  w[2 * i + 1] = (w[2 * i + 1] + vh + carry) >>> 0;
}

/** The int64 at word pair i, rounded to the nearest double (as C's conversion rounds). */
function read64(w: Uint32Array, i: number): number {
  return (w[2 * i + 1] | 0) * TWO32 + w[2 * i];
}

/** sum += x at element `offset` of a sum of `total` elements. */
export function exactAdd(sum: Uint32Array, total: number, x: Float32Array, offset = 0): void {
  for (let i = 0; i < x.length; i++) {
    const t = x[i] * HI;
    const h = Math.trunc(t);
    add64(sum, offset + i, h);
    add64(sum, total + offset + i, Math.trunc((t - h) * LO));
  }
}

/** The mean of an exact sum over `count` contributions, as float32. */
export function exactMean(sum: Uint32Array, total: number, count: number): Float32Array {
  const out = new Float32Array(total);
  for (let i = 0; i < total; i++) out[i] = ((read64(sum, i) * LO + read64(sum, total + i)) * UNIT) / count;
  return out;
}

/** The exact mean of whole vectors, in any order: what an accumulation of them yields. */
export function exactMeanOf(vectors: Float32Array[]): Float32Array {
  const total = vectors[0]?.length ?? 0;
  const sum = emptyExactSum(total);
  for (const v of vectors) exactAdd(sum, total, v);
  return exactMean(sum, total, vectors.length);
}
