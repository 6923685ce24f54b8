/**
 * Batch normalisation in training mode as one kernel and one gradient, on a backend that
 * registers BATCH_NORM_TRAINING (the native backend does), with the ReLU that follows it fused
 * in when asked. tfjs-layers composes the same from moments, batchNorm and their autodiff:
 * about twenty kernels per layer, some allocating a full-size tensor of ones in JavaScript.
 * Elsewhere the layer runs as tfjs-layers wrote it.
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';

/**
 * Inputs x, gamma, beta; attrs epsilon, relu; outputs [y, batch mean, batch variance
 * (biased)], y = max(0, normalised) with relu.
 */
export const BATCH_NORM_TRAINING = 'PeerlessBatchNormTraining';
/** Inputs dy, x, gamma, mean, variance (and y with relu); attrs as above; outputs [dx, dgamma, dbeta]. */
export const BATCH_NORM_TRAINING_GRAD = 'PeerlessBatchNormTrainingGrad';

/** The fields of tfjs-layers' BatchNormalization this needs (they are not in its typings). */
interface BatchNormFields {
  axis: number;
  momentum: number;
  epsilon: number;
  center: boolean;
  scale: boolean;
  gamma: { read(): tf.Tensor };
  beta: { read(): tf.Tensor };
  movingMean: { read(): tf.Tensor; write(v: tf.Tensor): void };
  movingVariance: { read(): tf.Tensor; write(v: tf.Tensor): void };
}

/** Whether the current backend has the one-kernel batch norm. */
export function hasBatchNormTraining(): boolean {
  return tf.getKernel(BATCH_NORM_TRAINING, tf.getBackend()) !== undefined;
}

/** Whether `layer` is a plain ReLU activation layer (what a fused batch norm can absorb). */
export function isRelu(layer: tfl.layers.Layer): boolean {
  return layer.getClassName() === 'Activation' && (layer.getConfig() as { activation?: string }).activation === 'relu';
}

/**
 * `layer` applied to `x` in training mode through the one kernel (then ReLU with `relu`),
 * with the moving statistics updated as tfjs-layers updates them; null when the layer or the
 * backend is not a case it handles.
 */
export function batchNormTraining(layer: tfl.layers.Layer, x: tf.Tensor, opts: { relu?: boolean } = {}): tf.Tensor | null {
  if (x.dtype !== 'float32' || x.rank < 2 || !hasBatchNormTraining()) return null;
  const bn = layer as unknown as BatchNormFields;
  if (layer.getClassName() !== 'BatchNormalization' || !bn.scale || !bn.center || (bn.axis !== -1 && bn.axis !== x.rank - 1)) return null;
  const [y, mean, variance] = tf.engine().runKernel(BATCH_NORM_TRAINING,
    { x, gamma: bn.gamma.read(), beta: bn.beta.read() }, { epsilon: bn.epsilon, relu: opts.relu === true }) as tf.Tensor[];
  // tfjs-layers' doMovingAverage, op for op: moving - (moving - batch) * (1 - momentum).
  tf.tidy(() => {
    for (const [v, batch] of [[bn.movingMean, mean], [bn.movingVariance, variance]] as const) {
      const moving = v.read();
      v.write(tf.sub(moving, tf.mul(tf.sub(moving, batch!), 1 - bn.momentum)));
    }
  });
  return y!;
}

let gradientRegistered = false;

/** The gradient of BATCH_NORM_TRAINING, through the ReLU, the normalisation and the batch statistics. */
export function registerBatchNormTrainingGradient(): void {
  if (gradientRegistered) return;
  gradientRegistered = true;
  tf.registerGradient({
    kernelName: BATCH_NORM_TRAINING,
    inputsToSave: ['x', 'gamma'],
    outputsToSave: [true, true, true],
    gradFunc: (dys, saved, attrs) => {
      const dy = (Array.isArray(dys) ? dys[0] : dys)!;
      const [x, gamma, y, mean, variance] = saved as tf.Tensor[];
      // All three from one kernel, run here: the engine calls each input's function inside
      // its own tidy, which would dispose the other two.
      const inputs: tf.NamedTensorMap = { dy, x: x!, gamma: gamma!, mean: mean!, variance: variance! };
      if (attrs?.relu === true) inputs.y = y!;
      const [dx, dgamma, dbeta] = tf.engine().runKernel(BATCH_NORM_TRAINING_GRAD, inputs, attrs!) as tf.Tensor[];
      return { x: () => dx!, gamma: () => dgamma!, beta: () => dbeta! };
    },
  });
}
