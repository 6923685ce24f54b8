/**
 * A model's output head: how its output becomes a loss and a measure of its predictions,
 * read from the model itself so any Layers model trains as its author built it.
 *
 * - K outputs for K classes: softmax cross-entropy. On logits (a linear last layer, as the
 *   zoo's) through tf.losses' fused form; on probabilities (a softmax last layer, as Keras
 *   models usually end) as -log p(label), with p clipped at 1e-7 as Keras does. Measure: the
 *   count of correct predictions.
 * - One output for two classes: binary cross-entropy, on a logit (linear) or a probability
 *   (sigmoid), labels 0 and 1.
 * - T outputs for T regression targets: mean squared error (over targets, then samples, as
 *   Keras' MSE). Measure: the sum over samples of the mean absolute error.
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';

export interface Head {
  kind: 'softmax' | 'binary' | 'regression';
  /** Whether the model's output is already a probability (softmax / sigmoid last layer). */
  probabilities: boolean;
}

const EPSILON = 1e-7;

/** The activation the model's output passes through last ('linear' when none). */
export function outputActivation(model: tfl.LayersModel): string {
  const layer = model.outputs[0]!.sourceLayer as tfl.layers.Layer;
  if (layer.getClassName() === 'Softmax') return 'softmax';
  const a = (layer.getConfig() as { activation?: unknown }).activation;
  return typeof a === 'string' ? a : 'linear';
}

/**
 * The head of `model` for `classes` classes, or for `targets` regression targets when classes
 * is 0; an error naming the mismatch otherwise.
 */
export function headOf(model: tfl.LayersModel, classes: number, targets = 0): Head {
  const shape = model.outputs[0]!.shape;
  const units = shape[shape.length - 1];
  const activation = outputActivation(model);
  if (shape.length !== 2 || typeof units !== 'number') {
    throw new Error(`model "${model.name}" outputs shape [${shape.join(', ')}]: a model here outputs [batch, classes or targets]`);
  }
  if (classes === 0) {
    if (units !== targets) throw new Error(`model "${model.name}" has ${units} outputs, the data ${targets} regression target(s): give the last layer ${targets} unit(s)`);
    if (activation === 'softmax') throw new Error(`model "${model.name}" ends with softmax: a regression's outputs are values, end with a linear layer`);
    return { kind: 'regression', probabilities: false };
  }
  if (units === classes && classes >= 2) {
    if (activation !== 'linear' && activation !== 'softmax') throw new Error(`model "${model.name}" ends with a ${activation} activation: a classifier of ${classes} classes ends with softmax or a linear layer (logits)`);
    return { kind: 'softmax', probabilities: activation === 'softmax' };
  }
  if (units === 1 && classes === 2) {
    if (activation !== 'linear' && activation !== 'sigmoid') throw new Error(`model "${model.name}" ends with a ${activation} activation: a binary classifier's one output ends with sigmoid or a linear layer (a logit)`);
    return { kind: 'binary', probabilities: activation === 'sigmoid' };
  }
  throw new Error(`model "${model.name}" has ${units} outputs, the data ${classes} classes: give the last layer ${classes} units${classes === 2 ? ' (or 1 for a binary classifier)' : ''}`);
}

/**
 * The loss of `out` against `y` (class indices, int32; regression: float32 [batch, targets]),
 * averaged or summed over the batch.
 */
export function headLoss(head: Head, out: tf.Tensor, y: tf.Tensor, reduction: 'mean' | 'sum'): tf.Scalar {
  const r = reduction === 'mean' ? tf.Reduction.SUM_BY_NONZERO_WEIGHTS : tf.Reduction.SUM;
  if (head.kind === 'regression') {
    const perSample = tf.mean(tf.squaredDifference(out, y), 1);
    return (reduction === 'mean' ? tf.mean(perSample) : tf.sum(perSample)) as tf.Scalar;
  }
  if (head.kind === 'softmax') {
    if (!head.probabilities) return tf.losses.softmaxCrossEntropy(tf.oneHot(y as tf.Tensor1D, out.shape[1]!), out, undefined, 0, r) as tf.Scalar;
    const picked = tf.sum(tf.mul(tf.oneHot(y as tf.Tensor1D, out.shape[1]!), tf.clipByValue(out, EPSILON, 1)), 1);
    const nll = tf.neg(tf.log(picked));
    return (reduction === 'mean' ? tf.mean(nll) : tf.sum(nll)) as tf.Scalar;
  }
  const target = tf.reshape(tf.cast(y, 'float32'), [-1, 1]);
  if (!head.probabilities) return tf.losses.sigmoidCrossEntropy(target, out, undefined, 0, r) as tf.Scalar;
  return tf.losses.logLoss(target, out, undefined, EPSILON, r) as tf.Scalar;
}

/**
 * The head's measure of `out` against `y`: how many predictions equal the classes, or for a
 * regression the sum over samples of the mean absolute error.
 */
export function headMeasure(head: Head, out: tf.Tensor, y: tf.Tensor): tf.Scalar {
  if (head.kind === 'regression') return tf.sum(tf.mean(tf.abs(tf.sub(out, y)), 1));
  const predicted = head.kind === 'softmax'
    ? tf.argMax(out, 1)
    : tf.cast(tf.greater(tf.reshape(out, [-1]), head.probabilities ? 0.5 : 0), 'int32');
  return tf.sum(tf.cast(tf.equal(predicted, y), 'int32'));
}
