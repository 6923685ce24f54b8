import { z } from 'zod';

/**
 * What one sample is, as the functions need to know it to turn stored bytes into tensors:
 * the input's shape and how its values are stored, and what the label is. It travels in
 * every function event, so a function reads any dataset without knowing where it came from.
 *
 * Inputs: `uint8` values are scaled to [0, 1] (x / 255) on use; `float32` values (little
 * endian) are used as they are, so a loader that scales does it before storing.
 * Labels: class indices, one byte each up to 256 classes, two (little endian) above; or, for
 * regression (`classes` 0), `targets` float32 values per sample, as the source gives them.
 */
export const SampleSpecSchema = z.strictObject({
  shape: z.array(z.number().int().positive().max(1 << 20)).min(1).max(4),
  dtype: z.enum(['uint8', 'float32']),
  classes: z.number().int().min(0).max(65_536),
  targets: z.number().int().min(1).max(65_536).optional(),
}).superRefine((s, ctx) => {
  if (s.classes === 1) ctx.addIssue({ code: 'custom', path: ['classes'], message: 'one class cannot be learnt: 2 or more, or 0 for regression' });
  if ((s.classes === 0) !== (s.targets !== undefined)) ctx.addIssue({ code: 'custom', path: ['targets'], message: 'regression (classes 0) has targets, classification none' });
});

export type SampleSpec = z.infer<typeof SampleSpecSchema>;

/** MNIST as stored: 28x28 grey pixels, ten digits. */
export const MNIST_SPEC: SampleSpec = { shape: [28, 28, 1], dtype: 'uint8', classes: 10 };

/** Values in one input. */
export const inputSize = (s: SampleSpec): number => s.shape.reduce((a, b) => a * b, 1);

/** Bytes of one stored input. */
export const inputBytes = (s: SampleSpec): number => inputSize(s) * (s.dtype === 'uint8' ? 1 : 4);

/** Whether the labels are values to predict (regression) rather than classes. */
export const isRegression = (s: SampleSpec): boolean => s.classes === 0;

/** Values the model outputs per sample: one per class, or one per target. */
export const outputsOf = (s: SampleSpec): number => (isRegression(s) ? s.targets! : s.classes);

/** Bytes of one stored label. */
export const labelBytes = (s: SampleSpec): number => (isRegression(s) ? 4 * s.targets! : s.classes <= 256 ? 1 : 2);
