/**
 * NumPy's .npy arrays: a folder with `x.npy` (n x ...) and `y.npy` (n class indices), and
 * optionally `x_test.npy` and `y_test.npy`. `y` holds class indices, or regression targets
 * (n or n x T values; `task` regression, or auto with values not all integers). Unsigned-byte inputs are stored as they are
 * (scaled by 1/255 on use, as images; n x H x W is one channel, H x W x 1, as IDX's); other
 * numeric inputs become float32, min-max scaled to [0, 1] per feature with the training
 * split's range.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Dataset } from '../dataset.ts';
import { readDataFile } from '../read-file.ts';
import { classesOf, isRegressionTask, minMaxScale, targetBytes } from './tabular.ts';
import { UINT8_SCALING, type Splits, type Task } from './splits.ts';

export interface NpyArray {
  shape: number[];
  /** The values, as read (for u1 the bytes themselves). */
  values: Uint8Array | Float64Array;
  dtype: string;
}

const READERS: Record<string, { bytes: number; get: (v: DataView, o: number) => number }> = {
  '|u1': { bytes: 1, get: (v, o) => v.getUint8(o) },
  '|i1': { bytes: 1, get: (v, o) => v.getInt8(o) },
  '|b1': { bytes: 1, get: (v, o) => v.getUint8(o) },
  '<u2': { bytes: 2, get: (v, o) => v.getUint16(o, true) },
  '<i2': { bytes: 2, get: (v, o) => v.getInt16(o, true) },
  '<u4': { bytes: 4, get: (v, o) => v.getUint32(o, true) },
  '<i4': { bytes: 4, get: (v, o) => v.getInt32(o, true) },
  '<i8': { bytes: 8, get: (v, o) => Number(v.getBigInt64(o, true)) },
  '<u8': { bytes: 8, get: (v, o) => Number(v.getBigUint64(o, true)) },
  '<f4': { bytes: 4, get: (v, o) => v.getFloat32(o, true) },
  '<f8': { bytes: 8, get: (v, o) => v.getFloat64(o, true) },
};

/** Parses a .npy file (format versions 1-3, C order, little endian); errors name the file. */
export function parseNpy(bytes: Uint8Array, file: string): NpyArray {
  const magic = '\x93NUMPY';
  if (bytes.length < 10 || String.fromCharCode(...bytes.subarray(0, 6)) !== magic) throw new Error(`${file}: not a .npy file (no \\x93NUMPY magic)`);
  const major = bytes[6]!;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const start = major === 1 ? 10 : 12;
  const header = Buffer.from(bytes.subarray(start, start + headerLen)).toString('latin1');
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || !fortran || shapeText === undefined) throw new Error(`${file}: unreadable .npy header "${header.trim()}"`);
  if (fortran === 'True') throw new Error(`${file}: Fortran-ordered arrays are not supported: save with np.ascontiguousarray`);
  const reader = READERS[descr.replace(/^=/, '<')];
  if (!reader) throw new Error(`${file}: dtype ${descr} is not supported (unsigned/signed integers, bool, float32, float64, little endian)`);
  const shape = shapeText.split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  const n = shape.reduce((a, b) => a * b, 1);
  const data = start + headerLen;
  if (bytes.length !== data + n * reader.bytes) throw new Error(`${file}: shape (${shape.join(', ')}) of ${descr} needs ${n * reader.bytes} data bytes, the file has ${bytes.length - data}`);
  if (descr === '|u1') return { shape, values: bytes.subarray(data), dtype: descr };
  const values = new Float64Array(n);
  for (let i = 0; i < n; i++) values[i] = reader.get(view, data + i * reader.bytes);
  return { shape, values, dtype: descr };
}

const read = (file: string): NpyArray => parseNpy(new Uint8Array(readDataFile(file, '.npy')), file);

export function loadNpy(dir: string, task: Task = 'auto'): Splits {
  const paths = { x: join(dir, 'x.npy'), y: join(dir, 'y.npy'), xTest: join(dir, 'x_test.npy'), yTest: join(dir, 'y_test.npy') };
  for (const p of [paths.x, paths.y]) if (!existsSync(p)) throw new Error(`${dir}: no ${p.slice(dir.length + 1)} (an NPY dataset is x.npy and y.npy, optionally x_test.npy and y_test.npy)`);
  const pairs = [[read(paths.x), read(paths.y), paths.y]] as [NpyArray, NpyArray, string][];
  if (existsSync(paths.xTest) && existsSync(paths.yTest)) pairs.push([read(paths.xTest), read(paths.yTest), paths.yTest]);
  const regression = isRegressionTask(task, pairs[0]![1].values as ArrayLike<number>);
  for (const [x, y, yFile] of pairs) {
    if (!regression && y.shape.length !== 1 && !(y.shape.length === 2 && y.shape[1] === 1)) throw new Error(`${yFile}: labels of shape (${y.shape.join(', ')}), expected (n,): class indices (or --task regression for target values)`);
    if (regression && y.shape.length > 2) throw new Error(`${yFile}: targets of shape (${y.shape.join(', ')}), expected (n,) or (n, targets)`);
    if (x.shape.length < 2 || x.shape[0] !== y.shape[0]) throw new Error(`${yFile}: ${y.shape[0]} labels for inputs of shape (${x.shape.join(', ')})`);
  }
  const bytes = pairs[0]![0].dtype === '|u1';
  const rows = pairs[0]![0].shape.slice(1);
  const shape = bytes && rows.length === 2 ? [...rows, 1] : rows;
  if (pairs[1] && pairs[1][0].shape.slice(1).join('x') !== shape.join('x')) throw new Error(`${paths.xTest}: inputs of shape (${pairs[1][0].shape.join(', ')}), the training inputs (${pairs[0]![0].shape.join(', ')})`);
  const targets = regression ? (pairs[0]![1].shape[1] ?? 1) : 0;
  if (pairs[1] && regression && (pairs[1][1].shape[1] ?? 1) !== targets) throw new Error(`${paths.yTest}: ${pairs[1][1].shape[1] ?? 1} targets per sample, the training split ${targets}`);
  const t = regression ? targetBytes(pairs.map(([, y]) => y.values as ArrayLike<number>), targets, paths.y) : undefined;
  const { classes, indices, names } = t
    ? { classes: 0, indices: t.labels, names: undefined }
    : classesOf(pairs.map(([, y]) => Array.from(y.values, String)), paths.y);
  const scaled = bytes ? undefined : minMaxScale(pairs.map(([x]) => x.values as Float64Array), shape.reduce((a, b) => a * b, 1));
  const sets: Dataset[] = pairs.map(([x, y], k) => ({
    inputs: bytes ? (x.values as Uint8Array) : new Uint8Array(scaled!.values[k]!.buffer),
    labels: indices[k]!,
    count: y.shape[0]!,
    spec: { shape, dtype: bytes ? 'uint8' : 'float32', classes, ...(regression ? { targets } : {}) },
    ...(names ? { classNames: names } : {}),
  }));
  return { train: sets[0]!, test: sets[1], scaling: bytes ? UINT8_SCALING : scaled!.scaling, ...(t ? { targetScaling: t.scaling } : {}) };
}
