/**
 * Reading a functional layers model's graph: which symbolic tensors a layer reads and writes,
 * and where a batch norm's ReLU can be fused into it. Shared by the forward walk (forward.ts)
 * and the checkpoint segments (checkpoint.ts). Each zoo layer is used once (one inbound node).
 */
import type * as tfl from '@tensorflow/tfjs-layers';
import { isRelu } from './batch-norm.js';

type Layer = tfl.layers.Layer;

/** The ids of the symbolic tensors `layer` reads. */
export const inputIds = (layer: Layer): number[] => layer.inboundNodes[0]!.inputTensors.map((t) => t.id);

/** The id of the symbolic tensor `layer` writes. */
export const outputId = (layer: Layer): number => layer.inboundNodes[0]!.outputTensors[0]!.id;

/** Whether `next` is a ReLU layer that reads `layer`'s output and is its only reader. */
export function reluAfter(layer: Layer, next: Layer | undefined): boolean {
  if (next === undefined || !isRelu(next) || layer.outboundNodes.length !== 1) return false;
  const ins = inputIds(next);
  return ins.length === 1 && ins[0] === outputId(layer);
}
