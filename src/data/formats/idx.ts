/**
 * IDX, MNIST's format, for any dataset that comes in it (Fashion-MNIST, KMNIST, EMNIST): a
 * folder with `*train-images*`, `*train-labels*` and optionally `*t10k-images*` or
 * `*test-images*` with their labels, plain or gzipped. Images are unsigned bytes, n x H x W
 * (one channel) or n x H x W x C; labels unsigned bytes.
 */
import { readdirSync } from 'node:fs';
import { readIdx } from '../mnist.ts';
import type { Dataset } from '../dataset.ts';
import { UINT8_SCALING, type Splits } from './splits.ts';

const UBYTE = 0x08;

/** An IDX file's dimensions and its unsigned-byte payload; errors name the file. */
export function parseIdx(bytes: Uint8Array, file: string): { dims: number[]; data: Uint8Array } {
  if (bytes.length < 4) throw new Error(`${file}: truncated IDX file (${bytes.length} bytes)`);
  if (bytes[0] !== 0 || bytes[1] !== 0) throw new Error(`${file}: not an IDX file (its first two bytes are not 0)`);
  if (bytes[2] !== UBYTE) throw new Error(`${file}: IDX values of type 0x${bytes[2]!.toString(16)}, only unsigned bytes (0x08) are supported`);
  const rank = bytes[3]!;
  if (rank < 1 || bytes.length < 4 + 4 * rank) throw new Error(`${file}: truncated IDX header (${rank} dimensions)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims = Array.from({ length: rank }, (_, i) => view.getUint32(4 + 4 * i));
  const need = 4 + 4 * rank + dims.reduce((a, b) => a * b, 1);
  if (bytes.length !== need) throw new Error(`${file}: dimensions ${dims.join('x')} need ${need} bytes, the file has ${bytes.length} (truncated or corrupt)`);
  return { dims, data: bytes.subarray(4 + 4 * rank) };
}

function find(dir: string, names: string[], pattern: RegExp): string | undefined {
  const hits = names.filter((n) => pattern.test(n)).sort();
  return hits[0]?.replace(/\.gz$/, '');
}

function loadPair(dir: string, imagesName: string, labelsName: string): Omit<Dataset, 'spec'> & { shape: number[] } {
  const images = parseIdx(...readIdx(dir, imagesName, 'IDX'));
  const labels = parseIdx(...readIdx(dir, labelsName, 'IDX'));
  const [n, ...rest] = images.dims;
  if (rest.length !== 2 && rest.length !== 3) throw new Error(`${dir}/${imagesName}: images of ${images.dims.length} dimensions, expected n x H x W or n x H x W x C`);
  if (labels.dims.length !== 1 || labels.dims[0] !== n) throw new Error(`${dir}/${labelsName}: ${labels.dims.join('x')} labels for ${n} images`);
  return { inputs: images.data, labels: labels.data, count: n!, shape: rest.length === 2 ? [...rest, 1] : rest };
}

export function loadIdx(dir: string): Splits {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    throw new Error(`${dir}: cannot read the IDX folder: ${(err as Error).message}`);
  }
  const trainImages = find(dir, names, /train-images/), trainLabels = find(dir, names, /train-labels/);
  if (!trainImages || !trainLabels) throw new Error(`${dir}: no IDX training files (a *train-images* and a *train-labels* file)`);
  const testImages = find(dir, names, /(t10k|test)-images/), testLabels = find(dir, names, /(t10k|test)-labels/);
  const train = loadPair(dir, trainImages, trainLabels);
  const test = testImages && testLabels ? loadPair(dir, testImages, testLabels) : undefined;
  if (test && test.shape.join('x') !== train.shape.join('x')) throw new Error(`${dir}: test images are ${test.shape.join('x')}, training images ${train.shape.join('x')}`);
  let max = 0;
  for (const l of [train.labels, test?.labels ?? new Uint8Array()]) for (const v of l) if (v > max) max = v;
  const spec = { shape: train.shape, dtype: 'uint8' as const, classes: Math.max(2, max + 1) };
  const { shape: _s, ...trainSet } = train;
  return { train: { ...trainSet, spec }, test: test ? { inputs: test.inputs, labels: test.labels, count: test.count, spec } : undefined, scaling: UINT8_SCALING };
}
