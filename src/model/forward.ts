/**
 * Runs a functional layers model on a concrete tensor with an explicit training flag.
 *
 * tfjs-layers' `model.apply(x, { training: true })` does not pass the flag on to the inner
 * layers (only its private fit() executor does), so batch norm would silently run in
 * inference mode. This walks the model's layers in their topological order instead, giving
 * every layer the flag. Each zoo layer is used exactly once (one inbound node). Batch norm in
 * training runs as one kernel where the backend has it (batch-norm.ts).
 */
import type * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { batchNormTraining } from './batch-norm.js';

export function forward(model: tfl.LayersModel, x: tf.Tensor, training: boolean): tf.Tensor {
  const values = new Map<number, tf.Tensor>();
  values.set(model.inputs[0]!.id, x);
  for (const layer of model.layers) {
    if (layer.getClassName() === 'InputLayer') continue;
    const node = layer.inboundNodes[0];
    if (node === undefined || layer.inboundNodes.length !== 1) {
      throw new Error(`layer "${layer.name}" must be used exactly once in model "${model.name}"`);
    }
    const ins = node.inputTensors.map((s) => {
      const v = values.get(s.id);
      if (v === undefined) throw new Error(`layer "${layer.name}": input "${s.name}" not computed yet`);
      return v;
    });
    const one = training && ins.length === 1 ? batchNormTraining(layer, ins[0]!) : null;
    const out = one ?? (layer.apply(ins.length === 1 ? ins[0]! : ins, { training }) as tf.Tensor);
    values.set(node.outputTensors[0]!.id, out);
  }
  const y = values.get(model.outputs[0]!.id);
  if (y === undefined) throw new Error(`model "${model.name}": output not computed`);
  return y;
}
