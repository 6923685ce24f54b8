/**
 * Gradient checkpointing: a model's layers cut into segments at the points where a single
 * tensor carries everything forward (a residual block's output, a dense block's running
 * concatenation). A segment keeps only its input for the backward pass and runs its forward
 * again there, under a tape of its own, one segment at a time. Memory then holds the segments'
 * inputs instead of every intermediate: DenseNet-121 at batch 64 fits wasm's 4 GiB heap, for
 * one more forward pass. The gradient is the same, bit for bit: the same kernels run on the
 * same values in the same order.
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { inputIds, outputId, reluAfter } from './graph.js';

type Layer = tfl.layers.Layer;

/** Layers from one cut to the next: the input tensor's id, then the layers in order. */
export interface Segment {
  inputId: number;
  layers: Layer[];
  outputId: number;
}


/**
 * The model's layers (topological order, the input layer left out) in segments of at least
 * `minLayers`, each ending where its output is the only tensor any later layer reads.
 */
export function segmentsOf(model: tfl.LayersModel, minLayers = 4): Segment[] {
  const layers = model.layers.filter((l) => l.getClassName() !== 'InputLayer');
  const lastUse = new Map<number, number>();
  layers.forEach((l, i) => inputIds(l).forEach((id) => lastUse.set(id, i)));
  lastUse.set(model.outputs[0]!.id, Infinity);
  const segments: Segment[] = [];
  let start = 0;
  let inputId = model.inputs[0]!.id;
  // Tensors made so far that a later layer still reads.
  const live = new Set<number>([inputId]);
  layers.forEach((l, i) => {
    for (const id of inputIds(l)) if ((lastUse.get(id) ?? -1) <= i) live.delete(id);
    const out = outputId(l);
    if ((lastUse.get(out) ?? -1) > i) live.add(out);
    // Not between a layer and the ReLU fused into it (forward.ts): they run as one kernel.
    const cut = live.size === 1 && live.has(out) && !reluAfter(l, layers[i + 1]);
    if ((cut && i + 1 - start >= minLayers) || i === layers.length - 1) {
      segments.push({ inputId, layers: layers.slice(start, i + 1), outputId: out });
      start = i + 1;
      inputId = out;
    }
  });
  return segments;
}

/** Runs layers in order, reading and writing tensor values by symbolic tensor id (forward.ts). */
export type LayerRunner = (layers: Layer[], values: Map<number, tf.Tensor>) => void;

/** Runs a segment's layers on `x` (the segment's input) and returns its output. */
function runSegment(s: Segment, x: tf.Tensor, run: LayerRunner): tf.Tensor {
  const values = new Map<number, tf.Tensor>([[s.inputId, x]]);
  run(s.layers, values);
  return values.get(s.outputId)!;
}

interface TapeState { activeTape: unknown }

interface StateVariable { read(): tf.Tensor; write(v: tf.Tensor): void }

/**
 * The segment as one differentiable op of its input and its trainable variables. The backward
 * pass re-runs the forward under tf's gradient tape. tf.engine().gradients() called inside a
 * backward pass would replace, then drop, the outer pass's tape (tfjs-core 4.x keeps one
 * `activeTape`): it is put back after, so the outer pass still frees what it saved.
 */
export function checkpointed(s: Segment, x: tf.Tensor, run: LayerRunner): tf.Tensor {
  const vars = s.layers.flatMap((l) => l.trainableWeights.map((w) => (w as unknown as { read(): tf.Variable }).read()));
  // Batch norm's moving statistics: the forward wrote them; the re-run must leave them so.
  const stats = s.layers.flatMap((l) => l.nonTrainableWeights as unknown as StateVariable[]);
  const op = tf.customGrad((...args: unknown[]) => {
    const save = args.pop() as tf.GradSaveFunc;
    const input = args[0] as tf.Tensor;
    save([input]);
    return {
      value: runSegment(s, input, run),
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const state = (tf.engine() as unknown as { state: TapeState }).state;
        const outer = state.activeTape;
        const written = stats.map((v) => tf.clone(v.read()));
        try {
          const { value, grads } = tf.engine().gradients(() => runSegment(s, saved[0]!, run), [saved[0]!, ...vars], dy as tf.Tensor, true);
          value.dispose();
          return grads.map((g, i) => g ?? tf.zerosLike(i === 0 ? saved[0]! : vars[i - 1]!));
        } finally {
          state.activeTape = outer;
          stats.forEach((v, i) => v.write(written[i]!));
          written.forEach((t) => t.dispose());
        }
      },
    };
  });
  return (op as (...t: tf.Tensor[]) => tf.Tensor)(x, ...vars);
}
