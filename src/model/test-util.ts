/** Helpers shared by this folder's specs (not used by production code). */
import * as tf from '@tensorflow/tfjs-core';

/** Runs `fn` with `name` as the active backend, then restores the previous one. */
export async function onBackend<R>(name: string, fn: () => R | Promise<R>): Promise<R> {
  const previous = tf.getBackend();
  await tf.setBackend(name);
  try {
    return await fn();
  } finally {
    await tf.setBackend(previous);
  }
}

/** max |a - b| / max(max |b|, tiny): one relative figure per array. */
export function relError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let diff = 0;
  let scale = 1e-12;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return diff / scale;
}

/** |a - b| / |b| in the Euclidean norm (0 when both are zero). */
export function normRelError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let diff = 0, ref = 0;
  for (let i = 0; i < a.length; i++) {
    diff += (a[i]! - b[i]!) ** 2;
    ref += b[i]! ** 2;
  }
  return diff === 0 ? 0 : Math.sqrt(diff / Math.max(ref, 1e-300));
}

/** Deterministic pseudo-random numbers in [-1, 1). */
export function seeded(n: number, seed: number): Float32Array {
  let a = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
    out[i] = a / 2147483648 - 1;
  }
  return out;
}

/** A small learnable batch: each class is a bright bar at its own row band, plus noise. */
export function syntheticBatch(n: number, seed = 1): { images: Uint8Array; labels: Uint8Array } {
  const noise = seeded(n * 784, seed);
  const images = new Uint8Array(n * 784);
  const labels = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const label = i % 10;
    labels[i] = label;
    for (let p = 0; p < 784; p++) {
      const row = Math.floor(p / 28);
      const bar = row >= 2 + label * 2 && row < 4 + label * 2 ? 200 : 0;
      images[i * 784 + p] = Math.max(0, Math.min(255, bar + Math.round(noise[i * 784 + p]! * 40) + 40));
    }
  }
  return { images, labels };
}
