import type { Dataset } from './dataset.ts';
import { inputSize, MNIST_SPEC } from './spec.ts';

const PIXELS = inputSize(MNIST_SPEC), CLASSES = MNIST_SPEC.classes;
import { mulberry32 } from './random.ts';

/**
 * A seeded synthetic stand-in for MNIST, for fast tests: every class has a prototype image
 * made of a few bright blobs, and each sample is its class's prototype, shifted by up to a
 * pixel, with noise. Learnable by the zoo's models within a few rounds, and the same bytes
 * for the same (count, seed) everywhere.
 */
export function syntheticDataset(count: number, seed: number): Dataset {
  const rand = mulberry32(seed ^ 0x5eed);
  const protos: Float32Array[] = [];
  for (let c = 0; c < CLASSES; c++) {
    const p = new Float32Array(PIXELS);
    for (let b = 0; b < 4; b++) {
      const cy = 4 + rand() * 20, cx = 4 + rand() * 20, r = 2 + rand() * 3;
      for (let y = 0; y < 28; y++) for (let x = 0; x < 28; x++) {
        const d2 = (y - cy) ** 2 + (x - cx) ** 2;
        p[y * 28 + x] = Math.max(p[y * 28 + x], Math.exp(-d2 / (2 * r * r)));
      }
    }
    protos.push(p);
  }
  const inputs = new Uint8Array(count * PIXELS);
  const labels = new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    const c = Math.floor(rand() * CLASSES);
    labels[i] = c;
    const dy = Math.floor(rand() * 3) - 1, dx = Math.floor(rand() * 3) - 1;
    for (let y = 0; y < 28; y++) for (let x = 0; x < 28; x++) {
      const sy = Math.min(27, Math.max(0, y + dy)), sx = Math.min(27, Math.max(0, x + dx));
      const v = protos[c][sy * 28 + sx] * 220 + (rand() - 0.5) * 60;
      inputs[i * PIXELS + y * 28 + x] = Math.max(0, Math.min(255, Math.round(v)));
    }
  }
  return { inputs, labels, count, spec: MNIST_SPEC };
}
