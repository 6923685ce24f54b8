import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { afterAll, describe, expect, it } from 'vitest';
import { labelAt, permuteInPlace, select, slice } from '../dataset.ts';
import { permutation } from '../random.ts';
import { loadMnist, mnistDir } from '../mnist.ts';
import { loadSource, parseSource, preloadSource } from '../sources.ts';
import { loadCifar10, parseCifarBatch } from './cifar10.ts';
import { loadCsv, parseCsv } from './csv.ts';
import { loadIdx } from './idx.ts';
import { decodeImageFolderInWorker, loadImageFolder } from './images.ts';
import { loadNpy, parseNpy } from './npy.ts';

const tmp = mkdtempSync(join(tmpdir(), 'peerless-formats-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const dir = (name: string) => { const d = join(tmp, name); mkdirSync(d, { recursive: true }); return d; };
const mnist = loadMnist('test');

/** An IDX file of unsigned bytes with dimensions `dims`. */
function idx(dims: number[], data: Uint8Array): Buffer {
  const h = Buffer.alloc(4 + 4 * dims.length);
  h[2] = 0x08; h[3] = dims.length;
  dims.forEach((d, i) => h.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([h, data]);
}

/** A .npy file (version 1) of `descr` and `shape` holding `data`. */
function npy(descr: string, shape: number[], data: Uint8Array): Buffer {
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  header += ' '.repeat(63 - ((10 + header.length) % 64)) + '\n';
  const pre = Buffer.from([0x93, ...Buffer.from('NUMPY'), 1, 0, header.length & 0xff, header.length >> 8]);
  return Buffer.concat([pre, Buffer.from(header, 'latin1'), data]);
}

/** A w x h PNG of one colour. */
function png(w: number, h: number, rgb: readonly [number, number, number]): Buffer {
  const p = new PNG({ width: w, height: h });
  for (let i = 0; i < w * h; i++) p.data.set([...rgb, 255], i * 4);
  return PNG.sync.write(p);
}

describe('your data: IDX, CIFAR-10, NPY, CSV, image folders', () => {
  it('IDX (Fashion-MNIST\'s format): any folder of train and test files, any image size', () => {
    const d = dir('idx');
    const m = slice(mnist, 0, 300);
    writeFileSync(join(d, 'train-images-idx3-ubyte'), idx([200, 28, 28], m.inputs.subarray(0, 200 * 784)));
    writeFileSync(join(d, 'train-labels-idx1-ubyte'), idx([200], m.labels.subarray(0, 200)));
    writeFileSync(join(d, 't10k-images-idx3-ubyte'), idx([100, 28, 28], m.inputs.subarray(200 * 784)));
    writeFileSync(join(d, 't10k-labels-idx1-ubyte'), idx([100], m.labels.subarray(200)));
    const s = loadIdx(d);
    expect(s.train.spec).toEqual({ shape: [28, 28, 1], dtype: 'uint8', classes: 10 });
    expect([s.train.count, s.test?.count]).toEqual([200, 100]);
    expect(Buffer.compare(Buffer.from(s.test!.inputs), Buffer.from(m.inputs.subarray(200 * 784)))).toBe(0);
    // MNIST's own files load the same way.
    expect(loadIdx(mnistDir()).train.count).toBe(60_000);
    writeFileSync(join(d, 't10k-labels-idx1-ubyte'), idx([99], m.labels.subarray(200, 299)));
    expect(() => loadIdx(d)).toThrow(/t10k-labels-idx1-ubyte: 99 labels for 100 images/);
    expect(() => loadIdx(dir('empty'))).toThrow(/no IDX training files/);
  });

  it('CIFAR-10 binary: planes become channels-last pixels, with the class names', () => {
    const d = dir('cifar');
    const record = (label: number) => Buffer.concat([Buffer.from([label]), Buffer.alloc(1024, 10 + label), Buffer.alloc(1024, 20), Buffer.alloc(1024, 30)]);
    writeFileSync(join(d, 'data_batch_1.bin'), Buffer.concat([record(3), record(7)]));
    writeFileSync(join(d, 'test_batch.bin'), record(1));
    writeFileSync(join(d, 'batches.meta.txt'), 'airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n');
    const s = loadCifar10(d);
    expect(s.train.spec).toEqual({ shape: [32, 32, 3], dtype: 'uint8', classes: 10 });
    expect(Array.from(s.train.inputs.subarray(0, 6))).toEqual([13, 20, 30, 13, 20, 30]);
    expect(Array.from(s.train.labels)).toEqual([3, 7]);
    expect(s.train.classNames?.[3]).toBe('cat');
    expect(s.test?.count).toBe(1);
    expect(() => parseCifarBatch(new Uint8Array(100), 'b.bin')).toThrow('b.bin: 100 bytes is not a whole number of 3073-byte CIFAR-10 records');
  });

  it('NPY: bytes stay bytes (grey images get their channel), other numbers are scaled per feature', () => {
    const d = dir('npy');
    const m = slice(mnist, 0, 50);
    writeFileSync(join(d, 'x.npy'), npy('|u1', [50, 28, 28], m.inputs));
    writeFileSync(join(d, 'y.npy'), npy('<i8', [50], new Uint8Array(BigInt64Array.from(Array.from(m.labels, BigInt)).buffer)));
    const s = loadNpy(d);
    expect(s.train.spec).toEqual({ shape: [28, 28, 1], dtype: 'uint8', classes: 10 });
    expect(Array.from({ length: 5 }, (_, i) => labelAt(s.train, i))).toEqual(Array.from(m.labels.subarray(0, 5)));
    const f = dir('npy-float');
    writeFileSync(join(f, 'x.npy'), npy('<f8', [3, 2], new Uint8Array(Float64Array.of(0, 10, 5, 20, 10, 30).buffer)));
    writeFileSync(join(f, 'y.npy'), npy('<i4', [3], new Uint8Array(Int32Array.of(0, 1, 1).buffer)));
    const t = loadNpy(f);
    expect(t.train.spec).toEqual({ shape: [2], dtype: 'float32', classes: 2 });
    expect(Array.from(new Float32Array(t.train.inputs.slice().buffer))).toEqual([0, 0, 0.5, 0.5, 1, 1]);
    expect(t.scaling).toEqual({ kind: 'minmax', min: [0, 10], max: [10, 30] });
    expect(() => parseNpy(npy('<c8', [1], new Uint8Array(8)), 'c.npy')).toThrow('c.npy: dtype <c8 is not supported');
    expect(() => parseNpy(new Uint8Array(20), 'z.npy')).toThrow('z.npy: not a .npy file');
  });

  it('CSV: a named label column, quoted fields, class names, and errors naming row and column', () => {
    const file = join(dir('csv'), 'iris.csv');
    writeFileSync(file, 'length,width,species\n1,2,setosa\n3,"4",virginica\n5,6,"setosa"\n');
    const s = loadCsv(file, 'species');
    expect(s.train.spec).toEqual({ shape: [2], dtype: 'float32', classes: 2 });
    expect(s.train.classNames).toEqual(['setosa', 'virginica']);
    expect(Array.from(s.train.labels)).toEqual([0, 1, 0]);
    expect(Array.from(new Float32Array(s.train.inputs.slice().buffer))).toEqual([0, 0, 0.5, 0.5, 1, 1]);
    expect(parseCsv('a,"b ""x"", c"\r\n1,2\n')).toEqual([['a', 'b "x", c'], ['1', '2']]);
    expect(() => loadCsv(file, 'label')).toThrow(/no column "label" \(columns: length, width, species\); name the label column with --label-column/);
    writeFileSync(file, 'a,label\n1,0\nx,1\n');
    expect(() => loadCsv(file, 'label')).toThrow(/iris\.csv: row 3, column "a": "x" is not a number/);
  });

  it('an image folder decoded in a worker thread gives the same bytes, and its errors name the file', async () => {
    const d = dir('images-worker');
    for (const [cls, rgb] of [['cat', [200, 30, 30]], ['dog', [10, 10, 10]]] as const) {
      mkdirSync(join(d, cls), { recursive: true });
      for (let i = 0; i < 3; i++) writeFileSync(join(d, cls, `${i}.png`), png(6, 5, [rgb[0] + i, rgb[1], rgb[2]]));
    }
    const here = loadImageFolder(d, { width: 4, height: 4 });
    const there = await decodeImageFolderInWorker(d, { width: 4, height: 4 });
    expect(there.train.spec).toEqual(here.train.spec);
    expect(there.train.classNames).toEqual(['cat', 'dog']);
    expect(Buffer.from(there.train.inputs).equals(Buffer.from(here.train.inputs))).toBe(true);
    expect(Buffer.from(there.train.labels).equals(Buffer.from(here.train.labels))).toBe(true);
    // Preloaded twice at once (one decode), then loaded: the worker's splits, as loadSource's.
    const o = { labelColumn: 'label', testFraction: 0.5, seed: 1, syntheticSize: 0, resize: '4x4' };
    await Promise.all([preloadSource(`images:${d}`, o), preloadSource(`images:${d}`, o)]);
    const loaded = loadSource(`images:${d}`, o);
    expect(loaded.train.count + loaded.test!.count).toBe(here.train.count);
    writeFileSync(join(d, 'dog', 'broken.png'), 'not an image');
    await expect(decodeImageFolderInWorker(d)).rejects.toThrow(/broken\.png: neither a PNG nor a JPEG image/);
  });

  it('an image folder: a subfolder per class, PNG and JPEG, grey or colour, resized on request', () => {
    const d = dir('images');
    mkdirSync(join(d, 'train', 'cat'), { recursive: true });
    mkdirSync(join(d, 'train', 'dog'), { recursive: true });
    mkdirSync(join(d, 'test', 'dog'), { recursive: true });
    writeFileSync(join(d, 'train', 'cat', 'a.png'), png(4, 4, [200, 200, 200]));
    writeFileSync(join(d, 'train', 'dog', 'b.png'), png(4, 4, [10, 10, 10]));
    writeFileSync(join(d, 'test', 'dog', 'c.png'), png(4, 4, [12, 12, 12]));
    const grey = loadImageFolder(d);
    expect(grey.train.spec).toEqual({ shape: [4, 4, 1], dtype: 'uint8', classes: 2 });
    expect(grey.train.classNames).toEqual(['cat', 'dog']);
    expect(grey.test?.count).toBe(1);
    const jpg = jpeg.encode({ data: Buffer.alloc(8 * 8 * 4, 128).map((v, i) => (i % 4 === 0 ? 250 : v)), width: 8, height: 8 }, 95).data;
    writeFileSync(join(d, 'train', 'dog', 'd.jpg'), jpg);
    expect(() => loadImageFolder(d)).toThrow(/d\.jpg: 8x8, the first image 4x4: give --resize WxH/);
    const colour = loadImageFolder(d, { width: 4, height: 4 });
    expect(colour.train.spec.shape).toEqual([4, 4, 3]);
    expect(colour.train.count).toBe(3);
    // The grey cat (decoded before the first colour image) is copied across three channels.
    expect(Array.from(colour.train.inputs.subarray(0, 3))).toEqual([200, 200, 200]);
    const [r, g, b] = colour.train.inputs.subarray(2 * 48, 2 * 48 + 3); // the JPEG, lossy
    expect(r).toBeGreaterThan(240);
    expect(Math.abs(g! - 128) + Math.abs(b! - 128)).toBeLessThan(8);
    expect(colour.test?.spec.shape).toEqual([4, 4, 3]);
    expect(() => loadImageFolder(join(d, 'train', 'cat'))).toThrow(/0 class folder\(s\)/);
    mkdirSync(join(d, 'train', 'bird'));
    expect(() => loadImageFolder(d, { width: 4, height: 4 })).toThrow(/train\/bird: an empty class folder/);
  });

  it('sources: one string names format and path; a source without a test split gets a seeded 20%', () => {
    expect(parseSource('csv:./a.csv')).toEqual({ format: 'csv', path: './a.csv' });
    expect(() => parseSource('parquet:x')).toThrow(/expected mnist, synthetic, or <format>:<path>/);
    const file = join(dir('split'), 'rows.csv');
    writeFileSync(file, `x,label\n${Array.from({ length: 50 }, (_, i) => `${i},${i % 2}`).join('\n')}\n`);
    const o = { labelColumn: 'label', testFraction: 0, seed: 3, syntheticSize: 64 };
    const a = loadSource(`csv:${file}`, o);
    expect([a.train.count, a.test?.count]).toEqual([40, 10]);
    const values = (d: typeof a.train) => Array.from(new Float32Array(d.inputs.slice().buffer));
    expect(new Set([...values(a.train), ...values(a.test!)]).size).toBe(50);
    expect(loadSource(`csv:${file}`, { ...o, testFraction: 0.5 }).test?.count).toBe(25);
    // The in-place shuffle behind it gives what a copy would.
    const some = slice(mnist, 0, 500), order = permutation(500, 9);
    const copy = select(some, order);
    const own = { ...some, inputs: some.inputs.slice(), labels: some.labels.slice() };
    permuteInPlace(own, order);
    expect(Buffer.compare(Buffer.from(own.inputs), Buffer.from(copy.inputs))).toBe(0);
    expect(Buffer.compare(Buffer.from(own.labels), Buffer.from(copy.labels))).toBe(0);
  });
});
