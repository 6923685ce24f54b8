import type { Dataset } from '../dataset.ts';

/**
 * How the stored inputs come from the source's values, stated in the dataset's metadata and
 * in a saved model's, so whoever uses the model scales inputs the same way: uint8 values
 * divided by 255 (images), or each feature min-max scaled to [0, 1] with the training split's
 * range (`x' = (x - min) / (max - min)`, 0 where max = min).
 */
export type Scaling = { kind: 'divide'; by: number } | { kind: 'minmax'; min: number[]; max: number[] };

export const UINT8_SCALING: Scaling = { kind: 'divide', by: 255 };

/**
 * What the labels are: classes, values to predict (regression), or `auto`: regression when the
 * label values are numbers and not all integers, classes otherwise.
 */
export type Task = 'auto' | 'classification' | 'regression';

/**
 * A regression's targets as stored: standardised per target, `y' = (y - mean) / std`, with
 * the training split's statistics. A prediction p means `p * std + mean` in the source's units.
 */
export interface TargetScaling { mean: number[]; std: number[] }

/**
 * What a loader returns: the training samples, the test samples when the source has its own
 * split, the inputs' scaling, and a regression's target scaling.
 */
export interface Splits {
  train: Dataset;
  test?: Dataset;
  scaling: Scaling;
  targetScaling?: TargetScaling;
}
