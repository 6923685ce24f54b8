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
 * What a loader returns: the training samples, the test samples when the source has its own
 * split, and the scaling.
 */
export interface Splits {
  train: Dataset;
  test?: Dataset;
  scaling: Scaling;
}
