/** Images as uint8 pixels (count x 784, row-major 28x28), labels as uint8 classes 0-9. */
export interface Dataset {
  images: Uint8Array;
  labels: Uint8Array;
  count: number;
}

export const PIXELS = 28 * 28;
export const CLASSES = 10;

/** The samples at `indices`, copied into a new dataset (indices may be in any order). */
export function select(d: Dataset, indices: ArrayLike<number>): Dataset {
  const images = new Uint8Array(indices.length * PIXELS);
  const labels = new Uint8Array(indices.length);
  for (let i = 0; i < indices.length; i++) {
    const j = indices[i];
    images.set(d.images.subarray(j * PIXELS, (j + 1) * PIXELS), i * PIXELS);
    labels[i] = d.labels[j];
  }
  return { images, labels, count: indices.length };
}
