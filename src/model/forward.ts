/**
 * Runs a functional layers model on a concrete tensor with an explicit training flag.
 *
 * tfjs-layers' `model.apply(x, { training: true })` does not pass the flag on to the inner
 * layers (only its private fit() executor does), so batch norm would silently run in
 * inference mode. This walks the model's layers in their topological order instead, giving
 * every layer the flag. Each zoo layer is used exactly once (one inbound node).
 *
 * In training, a batch norm runs as one kernel where the backend has it, with the ReLU layer
 * right after it fused in when that ReLU is the batch norm's only reader (batch-norm.ts). With
 * `checkpoint`, the layers run in checkpointed segments (checkpoint.ts): less memory, one
 * more forward pass.
 */
import type * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { batchNormTraining } from './batch-norm.js';
import { checkpointed, segmentsOf } from './checkpoint.js';
import { inputIds, outputId, reluAfter } from './graph.js';

type Layer = tfl.layers.Layer;

const RANDOM_IN_TRAINING = new Set(['Dropout', 'SpatialDropout1D', 'SpatialDropout2D', 'AlphaDropout', 'GaussianDropout', 'GaussianNoise']);

export interface ForwardOptions {
  /** Keep only checkpointed segments' inputs for the backward pass (training only). */
  checkpoint?: boolean;
}

/** Tensor values by symbolic tensor id. */
export type Values = Map<number, tf.Tensor>;


/** Runs `layers` in order, reading and writing `values`. */
export function runLayers(layers: Layer[], values: Values, training: boolean): void {
  for (let i = 0; i < layers.length; i++) {
    const layer = layers[i]!;
    const ins = inputIds(layer).map((id) => {
      const v = values.get(id);
      if (v === undefined) throw new Error(`layer "${layer.name}": an input is not computed yet (or comes from outside its checkpointed segment)`);
      return v;
    });
    if (training && ins.length === 1) {
      const fuse = reluAfter(layer, layers[i + 1]);
      const one = batchNormTraining(layer, ins[0]!, { relu: fuse });
      if (one !== null) {
        if (fuse) i++; // the ReLU ran inside
        values.set(outputId(layers[i]!), one);
        continue;
      }
    }
    values.set(outputId(layer), layer.apply(ins.length === 1 ? ins[0]! : ins, { training }) as tf.Tensor);
  }
}

/**
 * Whether a model may run checkpointed: a checkpointed segment runs its forward twice, and
 * layers that draw random numbers in training (dropout, noise) would draw other ones the
 * second time. Such models run whole.
 */
export function checkpointable(model: tfl.LayersModel): boolean {
  return !model.layers.some((l) => RANDOM_IN_TRAINING.has(l.getClassName()));
}

export function forward(model: tfl.LayersModel, x: tf.Tensor, training: boolean, opts: ForwardOptions = {}): tf.Tensor {
  for (const layer of model.layers) {
    if (layer.getClassName() !== 'InputLayer' && layer.inboundNodes.length !== 1) {
      throw new Error(`layer "${layer.name}" must be used exactly once in model "${model.name}"`);
    }
  }
  if (training && opts.checkpoint && checkpointable(model)) {
    let h = x;
    for (const s of segmentsOf(model)) h = checkpointed(s, h, (layers, values) => runLayers(layers, values, true));
    return h;
  }
  const values: Values = new Map([[model.inputs[0]!.id, x]]);
  runLayers(model.layers.filter((l) => l.getClassName() !== 'InputLayer'), values, training);
  const y = values.get(model.outputs[0]!.id);
  if (y === undefined) throw new Error(`model "${model.name}": output not computed`);
  return y;
}
