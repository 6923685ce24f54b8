import { inputBytes, labelBytes, type SampleSpec } from './spec.ts';

/**
 * Samples as the stores keep them: `inputs` holds count x inputBytes(spec) bytes, row-major
 * (uint8 values, or float32 little endian), `labels` count x labelBytes(spec) bytes of class
 * indices. Plain bytes, so selecting, sharding and storing never look inside a sample.
 */
export interface Dataset {
  inputs: Uint8Array;
  labels: Uint8Array;
  count: number;
  spec: SampleSpec;
  /** A name per class, when the source has them (folders, CSV values, CIFAR's meta file). */
  classNames?: string[];
}

/** The samples at `indices`, copied into a new dataset (indices may be in any order). */
export function select(d: Dataset, indices: ArrayLike<number>): Dataset {
  const xb = inputBytes(d.spec), yb = labelBytes(d.spec);
  const inputs = new Uint8Array(indices.length * xb);
  const labels = new Uint8Array(indices.length * yb);
  for (let i = 0; i < indices.length; i++) {
    const j = indices[i]!;
    inputs.set(d.inputs.subarray(j * xb, (j + 1) * xb), i * xb);
    labels.set(d.labels.subarray(j * yb, (j + 1) * yb), i * yb);
  }
  return { ...d, inputs, labels, count: indices.length };
}

/** Samples [start, start + count) as views (no copy). */
export function slice(d: Dataset, start: number, count: number): Dataset {
  const xb = inputBytes(d.spec), yb = labelBytes(d.spec);
  return { ...d, inputs: d.inputs.subarray(start * xb, (start + count) * xb), labels: d.labels.subarray(start * yb, (start + count) * yb), count };
}

/** Class indices as stored: one byte each up to 256 classes, two (little endian) above. */
export function encodeLabels(classes: number, count: number, classOf: (i: number) => number): Uint8Array {
  const wide = classes > 256;
  const out = new Uint8Array(count * (wide ? 2 : 1));
  for (let i = 0; i < count; i++) {
    const c = classOf(i);
    if (wide) { out[2 * i] = c & 0xff; out[2 * i + 1] = c >> 8; } else out[i] = c;
  }
  return out;
}

/** The class of sample `i`. */
export function labelAt(d: Pick<Dataset, 'labels' | 'spec'>, i: number): number {
  return labelBytes(d.spec) === 1 ? d.labels[i]! : d.labels[2 * i]! | (d.labels[2 * i + 1]! << 8);
}

/**
 * Reorders `d`'s samples in place so that sample i becomes the one at `order[i]` (a
 * permutation), following its cycles with one sample's worth of scratch: a shuffled split of a
 * large dataset without a second copy of it.
 */
export function permuteInPlace(d: Dataset, order: ArrayLike<number>): void {
  const xb = inputBytes(d.spec), yb = labelBytes(d.spec);
  const tx = new Uint8Array(xb), ty = new Uint8Array(yb);
  const done = new Uint8Array(d.count);
  const move = (to: number, from: number) => {
    d.inputs.copyWithin(to * xb, from * xb, (from + 1) * xb);
    d.labels.copyWithin(to * yb, from * yb, (from + 1) * yb);
  };
  for (let i = 0; i < d.count; i++) {
    if (done[i] || order[i] === i) continue;
    tx.set(d.inputs.subarray(i * xb, (i + 1) * xb));
    ty.set(d.labels.subarray(i * yb, (i + 1) * yb));
    let j = i;
    for (;;) {
      done[j] = 1;
      const k = order[j]!;
      if (k === i) {
        d.inputs.set(tx, j * xb);
        d.labels.set(ty, j * yb);
        break;
      }
      move(j, k);
      j = k;
    }
  }
}
