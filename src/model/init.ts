/**
 * Seeded initial parameters, computed in plain JS from the layout alone, so every peer (any
 * backend, any machine) builds bit-identical parameters from the same seed.
 *
 * Kernels: He-uniform (limit sqrt(6 / fan_in)), suited to the ReLU nets of the zoo; the
 * classifier's kernel (the last trainable kernel): Glorot-uniform. Biases and BN betas 0,
 * BN gammas 1, moving means 0, moving variances 1. For your own models without weights, also:
 * depthwise kernels (fan_in = kernel height x width), recurrent kernels (Glorot-uniform) and
 * embeddings (uniform in +-0.05, Keras' default); any other weight is an error that says to
 * give the model.json its weights.
 */
import { mulberry32 } from '../data/random.ts';
import type { Layout, LayoutEntry } from './flat.js';


/** A per-entry seed: one entry's values do not depend on the sizes of those before it. */
function entrySeed(seed: number, index: number): number {
  return (Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b)) >>> 0;
}

function fill(out: Float32Array, e: LayoutEntry, value: number): void {
  out.fill(value, e.offset, e.offset + e.size);
}

function uniform(out: Float32Array, e: LayoutEntry, limit: number, seed: number): void {
  const rnd = mulberry32(seed);
  for (let i = 0; i < e.size; i++) out[e.offset + i] = (2 * rnd() - 1) * limit;
}

export function initialParams(layout: Layout, seed: number): Float32Array {
  const out = new Float32Array(layout.size);
  const kernels = layout.entries.filter((e) => e.name.endsWith('/kernel'));
  const classifier = kernels[kernels.length - 1];
  layout.entries.forEach((e, i) => {
    const weight = e.name.slice(e.name.lastIndexOf('/') + 1);
    switch (weight) {
      case 'kernel': {
        const fanOut = e.shape[e.shape.length - 1]!;
        const fanIn = e.size / fanOut;
        const limit = e === classifier ? Math.sqrt(6 / (fanIn + fanOut)) : Math.sqrt(6 / fanIn);
        uniform(out, e, limit, entrySeed(seed, i));
        break;
      }
      case 'depthwise_kernel': {
        const fanIn = e.shape.length === 4 ? e.shape[0]! * e.shape[1]! : e.size / e.shape[e.shape.length - 1]!;
        uniform(out, e, Math.sqrt(6 / fanIn), entrySeed(seed, i));
        break;
      }
      case 'recurrent_kernel': {
        const [fanIn, fanOut] = [e.shape[0]!, e.shape[e.shape.length - 1]!];
        uniform(out, e, Math.sqrt(6 / (fanIn + fanOut)), entrySeed(seed, i));
        break;
      }
      case 'embeddings':
        uniform(out, e, 0.05, entrySeed(seed, i));
        break;
      case 'gamma':
      case 'moving_variance':
        fill(out, e, 1);
        break;
      case 'bias':
      case 'beta':
      case 'moving_mean':
        fill(out, e, 0);
        break;
      default:
        throw new Error(`no seeded initializer for weight "${e.name}": give the model.json its weights (they become the initial parameters)`);
    }
  });
  return out;
}
