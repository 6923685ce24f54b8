/**
 * Shared by the loaders of numeric tables (CSV, NPY): class labels from whatever the source
 * holds, and min-max scaling of features.
 */
import { encodeLabels } from '../dataset.ts';
import type { Scaling, TargetScaling, Task } from './splits.ts';

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
  const indices = splits.map((values) => encodeLabels(classes, values.length, (i) => toIndex(values[i]!)));
  return { classes, indices, ...(names ? { names } : {}) };
}

/** Whether a label column is regression targets: asked for, or (auto) numbers not all integers. */
export function isRegressionTask(task: Task, values: ArrayLike<string | number>): boolean {
  if (task !== 'auto') return task === 'regression';
  let numeric = true, fractional = false;
  for (let i = 0; i < values.length; i++) {
    const v = Number(values[i]);
    if (!Number.isFinite(v) || String(values[i]).trim() === '') { numeric = false; break; }
    if (!Number.isInteger(v)) fractional = true;
  }
  return numeric && fractional;
}

/**
 * Regression targets as stored labels (float32 little endian, `targets` per sample), one per
 * split, each target standardised with the first (training) split's mean and standard
 * deviation, so a model starts near the mean whatever the targets' units; the scaling is
 * returned to be stated beside the model. A value that is not a finite number is an error
 * naming its sample.
 */
export function targetBytes(splits: ArrayLike<string | number>[], targets: number, source: string): { labels: Uint8Array[]; scaling: TargetScaling } {
  const parsed = splits.map((values, k) => Float64Array.from({ length: values.length }, (_, i) => {
    const v = Number(values[i]);
    if (!Number.isFinite(v) || String(values[i]).trim() === '') throw new Error(`${source}: target "${values[i]}" of sample ${Math.floor(i / targets)}${k > 0 ? ' of the test split' : ''} is not a number`);
    return v;
  }));
  const train = parsed[0]!, n = train.length / targets;
  const mean = new Array<number>(targets).fill(0), std = new Array<number>(targets).fill(0);
  train.forEach((v, i) => { mean[i % targets] += v / n; });
  train.forEach((v, i) => { std[i % targets] += (v - mean[i % targets]!) ** 2 / n; });
  for (let t = 0; t < targets; t++) std[t] = Math.sqrt(std[t]!) || 1;
  const labels = parsed.map((values) => new Uint8Array(Float32Array.from(values, (v, i) => (v - mean[i % targets]!) / std[i % targets]!).buffer));
  return { labels, scaling: { mean, std } };
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
