/**
 * One flat float32 vector per model: its fixed layout, the layout hash, and fast copies
 * between a model's variables and the vector.
 *
 * Layout: every trainable weight, in layer order, then every batch-norm moving statistic
 * (moving_mean, moving_variance), in layer order. So [0, trainableSize) is what an
 * optimizer updates, and [trainableSize, size) holds the BN statistics.
 *
 * BN statistics (the design the peer follows; see README.md):
 *   - In a gradient vector, the statistics slots carry the batch statistics of the batch
 *     (per-channel mean and biased variance as the BN layers computed them in training mode,
 *     size-weighted across micro-batches), not a derivative.
 *   - Averaging gradients (over batches, then over peers) thereby averages batch statistics,
 *     which is the population estimate for the current parameters (as in "precise BN").
 *   - After the optimizer step, the peer OVERWRITES params[trainableSize, size) with the
 *     averaged gradient's same slice. Any optimizer (SGD, momentum, Adam, weight decay) may
 *     run over the whole vector first: whatever it wrote into the statistics slots is
 *     replaced, and its state for those slots never feeds back into the trainable slots.
 *     Models without BN (cnn, vgg11) have trainableSize === size: nothing to overwrite.
 */
import { createHash } from 'node:crypto';
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';

export interface LayoutEntry {
  /** Layer name / weight name, e.g. "conv1/kernel"; stable across builds in one process. */
  name: string;
  shape: number[];
  /** Offset in float32 elements. */
  offset: number;
  size: number;
  trainable: boolean;
}

export interface Layout {
  model: string;
  entries: LayoutEntry[];
  /** Total float32 elements. */
  size: number;
  /** Elements [0, trainableSize) are trainable; the rest are BN moving statistics. */
  trainableSize: number;
  /** sha256 of the canonical layout JSON (model + entries), hex, first 16 chars. */
  hash: string;
}

interface Bound {
  layout: Layout;
  /** The variable behind each layout entry, same order. */
  variables: tf.Variable[];
}

const bound = new WeakMap<tfl.LayersModel, Bound>();

function weightsInOrder(model: tfl.LayersModel): Array<{ name: string; variable: tf.Variable; shape: number[]; trainable: boolean }> {
  const all: Array<{ name: string; variable: tf.Variable; shape: number[]; trainable: boolean }> = [];
  for (const layer of model.layers) {
    for (const w of layer.weights) {
      // originalName is "<layer>/<weight>"; `name` gets a process-wide "_N" suffix when the
      // same model is built twice, which must not change the layout.
      all.push({ name: w.originalName, variable: w.read() as tf.Variable, shape: [...w.shape] as number[], trainable: w.trainable });
    }
  }
  return [...all.filter((w) => w.trainable), ...all.filter((w) => !w.trainable)];
}

function bind(model: tfl.LayersModel): Bound {
  const cached = bound.get(model);
  if (cached !== undefined) return cached;
  const weights = weightsInOrder(model);
  const entries: LayoutEntry[] = [];
  let offset = 0;
  let trainableSize = 0;
  const seen = new Set<string>();
  for (const w of weights) {
    if (seen.has(w.name)) throw new Error(`duplicate weight name "${w.name}" in model "${model.name}"`);
    seen.add(w.name);
    const size = w.shape.reduce((a, b) => a * b, 1);
    entries.push({ name: w.name, shape: w.shape, offset, size, trainable: w.trainable });
    offset += size;
    if (w.trainable) trainableSize = offset;
  }
  const canonical = JSON.stringify({ model: model.name, entries: entries.map((e) => [e.name, e.shape, e.trainable]) });
  const hash = createHash('sha256').update(canonical).digest('hex').slice(0, 16);
  const b: Bound = { layout: { model: model.name, entries, size: offset, trainableSize, hash }, variables: weights.map((w) => w.variable) };
  bound.set(model, b);
  return b;
}

/** The model's fixed layout (computed once per model object). */
export function getLayout(model: tfl.LayersModel): Layout {
  return bind(model).layout;
}

/** The variables in layout order (trainable first): for gradient code in this folder. */
export function layoutVariables(model: tfl.LayersModel): tf.Variable[] {
  return bind(model).variables;
}

/** Copies every weight into one new Float32Array in layout order. */
export function getFlatParams(model: tfl.LayersModel): Float32Array {
  const { layout, variables } = bind(model);
  const flat = new Float32Array(layout.size);
  layout.entries.forEach((e, i) => {
    flat.set(variables[i].dataSync() as Float32Array, e.offset);
  });
  return flat;
}

/** Overwrites every weight from `flat` (layout order). Throws, changing nothing, on a bad length. */
export function setFlatParams(model: tfl.LayersModel, flat: Float32Array): void {
  const { layout, variables } = bind(model);
  if (!(flat instanceof Float32Array)) throw new Error('setFlatParams: expected a Float32Array');
  if (flat.length !== layout.size) {
    throw new Error(`setFlatParams: model "${layout.model}" (layout ${layout.hash}) has ${layout.size} parameters, got a vector of ${flat.length}`);
  }
  tf.tidy(() => {
    layout.entries.forEach((e, i) => {
      // assign() takes the new tensor's data; tidy disposes the wrapper, not the data.
      variables[i].assign(tf.tensor(flat.subarray(e.offset, e.offset + e.size), e.shape, 'float32'));
    });
  });
}

/**
 * Lays per-variable tensors out as one flat vector (entries absent from `byIndex` stay 0):
 * the gradient's trainable part. Without `into`, a new vector; with it, scale x each tensor is
 * added into `into`. Reads tensor data; does not dispose them.
 */
export function flatGradient(layout: Layout, byIndex: ReadonlyArray<tf.Tensor | undefined>, into?: Float32Array, scale = 1): Float32Array {
  const out = into ?? new Float32Array(layout.size);
  if (out.length !== layout.size) throw new Error(`flatGradient: expected ${layout.size} elements, got ${out.length}`);
  layout.entries.forEach((e, i) => {
    const t = byIndex[i];
    if (t === undefined) return;
    if (t.size !== e.size) throw new Error(`flatGradient: "${e.name}" has ${e.size} elements, its gradient ${t.size}`);
    const d = valuesOf(t);
    if (into === undefined && scale === 1) {
      out.set(d, e.offset);
    } else {
      for (let j = 0; j < e.size; j++) out[e.offset + j] += scale * d[j]!;
    }
  });
  return out;
}

/**
 * A float32 tensor's values, read in place where the backend keeps them in one heap (wasm:
 * a view, valid until the next allocation), else copied out. A ResNet-18 gradient is 45 MB:
 * the copy that dataSync() makes costs more than the layout itself.
 */
function valuesOf(t: tf.Tensor): Float32Array {
  const b = tf.backend() as unknown as { typedArrayFromHeap?: (t: tf.Tensor) => Float32Array };
  if (t.dtype === 'float32' && tf.getBackend() === 'wasm' && typeof b.typedArrayFromHeap === 'function') return b.typedArrayFromHeap(t);
  return t.dataSync() as Float32Array;
}

/** The layout as stored beside the params (e.g. in Redis): plain JSON. */
export function layoutJson(layout: Layout): string {
  return JSON.stringify(layout);
}
