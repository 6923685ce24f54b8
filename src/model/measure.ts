/**
 * Measures the model folder's figures on this machine, one wasm core:
 *   npx tsx src/model/measure.ts            (add --resnet to time a full ResNet-18 gradient,
 *                                            --native to compare the native backend with wasm)
 * Prints a parameter-count table (README.md's), the cnn gradient time at batch 64, and
 * wasm's shipped Conv2DBackpropInput against ours.
 */
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from './backend.js';
import { getLayout } from './flat.js';
import { computeGradient } from './gradient.js';
import { useShippedBackpropInput } from './wasm-kernels.js';
import { useNativeKernels } from './native-backend.js';
import { buildModel, MODEL_NAMES } from './zoo.js';

function batch(n: number): { images: Uint8Array; labels: Uint8Array } {
  const images = new Uint8Array(n * 784);
  for (let i = 0; i < images.length; i++) images[i] = (i * 2654435761) >>> 24;
  return { images, labels: new Uint8Array(n).map((_, i) => i % 10) };
}

function timeMs(fn: () => void, runs: number): number {
  fn(); // warm-up: XNNPACK operator setup, wasm heap growth
  const t = performance.now();
  for (let i = 0; i < runs; i++) fn();
  return (performance.now() - t) / runs;
}

/** Runs `fn` with oneDNN's convolutions in the wasm backend, then wasm's own again. */
function withNative<R>(fn: () => R): R {
  useNativeKernels(true);
  try { return fn(); } finally { useNativeKernels(false); }
}

async function main(): Promise<void> {
  const backend = await initBackend();
  console.log(`backend: ${backend}`);

  console.log('\n| model | width | trainable | BN statistics | total | layout hash |');
  console.log('| --- | --- | ---: | ---: | ---: | --- |');
  for (const name of MODEL_NAMES) {
    const model = buildModel(name, 1, 0);
    const l = getLayout(model);
    console.log(`| ${name} | 1 | ${l.trainableSize.toLocaleString('en')} | ${(l.size - l.trainableSize).toLocaleString('en')} | ${l.size.toLocaleString('en')} | ${l.hash} |`);
    model.dispose();
  }

  const { images, labels } = batch(64);
  const cnn = buildModel('cnn', 1, 0);
  console.log(`\ncnn gradient, batch 64: ${timeMs(() => computeGradient(cnn, images, labels), 10).toFixed(1)} ms`);

  // dX of a ResNet stage-1 conv and of the cnn's second conv: shipped kernel vs ours.
  const shapes: Array<{ label: string; dy: [number, number, number, number]; w: [number, number, number, number]; x: [number, number, number, number]; s: number }> = [
    { label: 'resnet stage 1 (64x28x28x64, 3x3/64, s1)', dy: [64, 28, 28, 64], w: [3, 3, 64, 64], x: [64, 28, 28, 64], s: 1 },
    { label: 'resnet stage 2 down (64x28x28x64 -> 14x14x128, s2)', dy: [64, 14, 14, 128], w: [3, 3, 64, 128], x: [64, 28, 28, 64], s: 2 },
    { label: 'cnn conv2 (64x13x13x32 -> 11x11x64, valid)', dy: [64, 11, 11, 64], w: [3, 3, 32, 64], x: [64, 13, 13, 32], s: 1 },
  ];
  for (const c of shapes) {
    const dy = tf.randomNormal(c.dy) as tf.Tensor4D;
    const w = tf.randomNormal(c.w) as tf.Tensor4D;
    const pad = c.label.includes('valid') ? 'valid' : 'same';
    const run = (): void => {
      tf.conv2dTranspose(dy, w, c.x, c.s, pad).dataSync();
    };
    useShippedBackpropInput(true);
    const theirs = timeMs(run, 3);
    useShippedBackpropInput(false);
    const ours = timeMs(run, 3);
    console.log(`Conv2DBackpropInput ${c.label}: wasm ${theirs.toFixed(1)} ms, ours ${ours.toFixed(1)} ms (${(theirs / ours).toFixed(1)}x)`);
    tf.dispose([dy, w]);
  }

  if (process.argv.includes('--native')) {
    // The native backend (oneDNN's convolutions in the wasm backend) against wasm, one thread.
    for (const c of shapes) {
      const dy = tf.randomNormal(c.dy) as tf.Tensor4D;
      const w = tf.randomNormal(c.w) as tf.Tensor4D;
      const pad = c.label.includes('valid') ? 'valid' : 'same';
      const run = (): void => { tf.conv2dTranspose(dy, w, c.x, c.s, pad).dataSync(); };
      const onWasm = timeMs(run, 3);
      const onNative = withNative(() => timeMs(run, 3));
      console.log(`Conv2DBackpropInput ${c.label}: wasm (ours) ${onWasm.toFixed(1)} ms, native ${onNative.toFixed(1)} ms (${(onWasm / onNative).toFixed(1)}x)`);
      tf.dispose([dy, w]);
    }
    for (const name of process.argv.includes('--resnet') ? ['cnn', 'vgg11', 'resnet18'] : ['cnn', 'vgg11']) {
      const model = buildModel(name, 1, 0);
      const runs = name === 'cnn' ? 5 : name === 'vgg11' ? 2 : 1;
      const onWasm = timeMs(() => computeGradient(model, images, labels), runs);
      const onNative = withNative(() => timeMs(() => computeGradient(model, images, labels), runs));
      console.log(`${name} gradient, batch 64: wasm ${onWasm.toFixed(0)} ms, native ${onNative.toFixed(0)} ms (${(onWasm / onNative).toFixed(2)}x)`);
      model.dispose();
    }
  }

  if (process.argv.includes('--resnet')) {
    const resnet = buildModel('resnet18', 1, 0);
    const t = performance.now();
    computeGradient(resnet, images, labels);
    console.log(`\nresnet18 width 1 gradient, batch 64 (first call): ${(performance.now() - t).toFixed(0)} ms`);
    console.log(`resnet18 width 1 gradient, batch 64 (warm): ${timeMs(() => computeGradient(resnet, images, labels), 1).toFixed(0)} ms`);
  }
  if (process.argv.includes('--densenet')) {
    const dense = buildModel('densenet121', 1, 0);
    const t = performance.now();
    computeGradient(dense, images, labels, { microBatch: 8 });
    console.log(`densenet121 width 1 gradient, batch 64, micro-batch 8: ${(performance.now() - t).toFixed(0)} ms`);
  }
}

await main();
