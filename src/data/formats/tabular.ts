/**
 * Shared by the loaders of numeric tables (CSV, NPY): class labels from whatever the source
 * holds, and min-max scaling of features.
 */
import type { Scaling } from './splits.ts';

/**
 * Class indices from label values (one list per split). Non-negative integers are taken as
 * they are (classes = the largest + 1); anything else is a class name, indexed in sorted
 * order over every split. Returned as stored labels: one byte each, two above 256 classes.
 */
export function classesOf(splits: string[][], source: string): { classes: number; indices: Uint8Array[]; names?: string[] } {
  const distinct = [...new Set(splits.flat())];
  const numeric = distinct.every((v) => /^\d+(\.0*)?$/.test(v.trim()));
  let toIndex: (v: string) => number;
  let classes: number;
  let names: string[] | undefined;
  if (numeric) {
    classes = Math.max(2, ...distinct.map((v) => Number(v) + 1));
    toIndex = Number;
  } else {
    names = distinct.sort();
    const at = new Map(names.map((n, i) => [n, i]));
    classes = Math.max(2, names.length);
    toIndex = (v) => at.get(v)!;
  }
  if (classes > 65_536) throw new Error(`${source}: ${classes} classes, at most 65536 are supported`);
  const wide = classes > 256;
  const indices = splits.map((values) => {
    const out = new Uint8Array(values.length * (wide ? 2 : 1));
    values.forEach((v, i) => {
      const c = toIndex(v);
      if (wide) { out[2 * i] = c & 0xff; out[2 * i + 1] = c >> 8; } else out[i] = c;
    });
    return out;
  });
  return { classes, indices, ...(names ? { names } : {}) };
}

/**
 * Each feature scaled to [0, 1] with the first split's range (the training split's), applied
 * to every split alike. A value that is not a finite number is an error naming its sample.
 */
export function minMaxScale(splits: Float64Array[], features: number): { values: Float32Array[]; scaling: Scaling } {
  const min = new Array<number>(features).fill(Infinity), max = new Array<number>(features).fill(-Infinity);
  splits.forEach((values, k) => values.forEach((v, i) => {
    if (!Number.isFinite(v)) throw new Error(`sample ${Math.floor(i / features)}${k > 0 ? ' of the test split' : ''}: feature ${i % features} is ${v}, not a finite number`);
  }));
  const train = splits[0]!;
  for (let i = 0; i < train.length; i++) {
    const f = i % features;
    if (train[i]! < min[f]!) min[f] = train[i]!;
    if (train[i]! > max[f]!) max[f] = train[i]!;
  }
  const values = splits.map((s) => {
    const out = new Float32Array(s.length);
    for (let i = 0; i < s.length; i++) {
      const f = i % features, span = max[f]! - min[f]!;
      out[i] = span > 0 ? (s[i]! - min[f]!) / span : 0;
    }
    return out;
  });
  return { values, scaling: { kind: 'minmax', min, max } };
}
