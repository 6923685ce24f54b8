/**
 * Runs a functional layers model on a concrete tensor with an explicit training flag.
 *
 * tfjs-layers' `model.apply(x, { training: true })` does not pass the flag on to the inner
 * layers (only its private fit() executor does), so batch norm would silently run in
 * inference mode. This walks the model's layers in their topological order instead, giving
 * every layer the flag. Each zoo layer is used exactly once (one inbound node). Batch norm in
 * training runs as one kernel where the backend has it (batch-norm.ts). With `checkpoint`,
 * the layers run in checkpointed segments (checkpoint.ts): less memory, one more forward pass.
 */
import type * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { batchNormTraining } from './batch-norm.js';
import { checkpointed, segmentsOf } from './checkpoint.js';

export interface ForwardOptions {
  /** Keep only checkpointed segments' inputs for the backward pass (training only). */
  checkpoint?: boolean;
}

export function forward(model: tfl.LayersModel, x: tf.Tensor, training: boolean, opts: ForwardOptions = {}): tf.Tensor {
  const apply = (layer: tfl.layers.Layer, ins: tf.Tensor[]): tf.Tensor => {
    const one = training && ins.length === 1 ? batchNormTraining(layer, ins[0]!) : null;
    return one ?? (layer.apply(ins.length === 1 ? ins[0]! : ins, { training }) as tf.Tensor);
  };
  for (const layer of model.layers) {
    if (layer.getClassName() !== 'InputLayer' && layer.inboundNodes.length !== 1) {
      throw new Error(`layer "${layer.name}" must be used exactly once in model "${model.name}"`);
    }
  }
  if (training && opts.checkpoint) {
    let h = x;
    for (const s of segmentsOf(model)) h = checkpointed(s, h, apply);
    return h;
  }
  const values = new Map<number, tf.Tensor>();
  values.set(model.inputs[0]!.id, x);
  for (const layer of model.layers) {
    if (layer.getClassName() === 'InputLayer') continue;
    const node = layer.inboundNodes[0]!;
    const ins = node.inputTensors.map((s) => {
      const v = values.get(s.id);
      if (v === undefined) throw new Error(`layer "${layer.name}": input "${s.name}" not computed yet`);
      return v;
    });
    values.set(node.outputTensors[0]!.id, apply(layer, ins));
  }
  const y = values.get(model.outputs[0]!.id);
  if (y === undefined) throw new Error(`model "${model.name}": output not computed`);
  return y;
}
