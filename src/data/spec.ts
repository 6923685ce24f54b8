import { z } from 'zod';

/**
 * What one sample is, as the functions need to know it to turn stored bytes into tensors:
 * the input's shape and how its values are stored, and the number of classes. It travels in
 * every function event, so a function reads any dataset without knowing where it came from.
 *
 * Inputs: `uint8` values are scaled to [0, 1] (x / 255) on use; `float32` values (little
 * endian) are used as they are, so a loader that scales does it before storing. Labels are
 * class indices: one byte each up to 256 classes, two (little endian) above.
 */
export const SampleSpecSchema = z.strictObject({
  shape: z.array(z.number().int().positive().max(1 << 20)).min(1).max(4),
  dtype: z.enum(['uint8', 'float32']),
  classes: z.number().int().min(2).max(65_536),
});

export type SampleSpec = z.infer<typeof SampleSpecSchema>;

/** MNIST as stored: 28x28 grey pixels, ten digits. */
export const MNIST_SPEC: SampleSpec = { shape: [28, 28, 1], dtype: 'uint8', classes: 10 };

/** Values in one input. */
export const inputSize = (s: SampleSpec): number => s.shape.reduce((a, b) => a * b, 1);

/** Bytes of one stored input. */
export const inputBytes = (s: SampleSpec): number => inputSize(s) * (s.dtype === 'uint8' ? 1 : 4);

/** Bytes of one stored label. */
export const labelBytes = (s: SampleSpec): number => (s.classes <= 256 ? 1 : 2);

/** "28x28x1 uint8 (scaled by 1/255), 10 classes": for logs and metadata. */
export function describeSpec(s: SampleSpec): string {
  return `${s.shape.join('x')} ${s.dtype}${s.dtype === 'uint8' ? ' (scaled by 1/255)' : ''}, ${s.classes} classes`;
}

/** Whether two specs describe the same samples (the network's data must agree). */
export function sameSpec(a: SampleSpec, b: SampleSpec): boolean {
  return a.dtype === b.dtype && a.classes === b.classes && a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape[i]);
}
