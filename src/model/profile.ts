/**
 * Per-kernel time of one gradient, the table that decides which kernels the native backend
 * replaces next (issue: "profile first"). Every kernel of the wasm backend is wrapped with a
 * timer; wasm kernels are synchronous, so wall time is the kernel's own.
 *   npx tsx src/model/profile.ts [--models vgg11,resnet18] [--batch 64] [--wasm]
 * --wasm profiles wasm's own kernels instead of the native backend's.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { KernelConfig } from '@tensorflow/tfjs-core';
import { initBackend } from './backend.js';
import { computeGradient } from './gradient.js';
import { useNativeKernels } from './native-backend.js';
import { buildModel } from './zoo.js';

const arg = (name: string, fallback: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : fallback;
};

const spent = new Map<string, { ms: number; calls: number }>();

/** Re-registers every wasm kernel with a timer around it. */
function instrument(): void {
  for (const k of tf.getKernelsForBackend('wasm')) {
    const inner = k.kernelFunc;
    const timed: KernelConfig = {
      ...k,
      kernelFunc: (args) => {
        const t = performance.now();
        const out = inner(args);
        const s = spent.get(k.kernelName) ?? { ms: 0, calls: 0 };
        s.ms += performance.now() - t;
        s.calls++;
        spent.set(k.kernelName, s);
        return out;
      },
    };
    tf.unregisterKernel(k.kernelName, 'wasm');
    tf.registerKernel(timed);
  }
}

async function main(): Promise<void> {
  const models = arg('models', 'vgg11,resnet18').split(',');
  const batch = Number(arg('batch', '64'));
  const runs = Number(arg('runs', '2'));
  await initBackend('wasm');
  if (!process.argv.includes('--wasm')) useNativeKernels(true);
  instrument();
  const images = new Uint8Array(batch * 784).map((_, i) => (i * 2654435761) >>> 24);
  const labels = new Uint8Array(batch).map((_, i) => i % 10);
  for (const name of models) {
    const model = buildModel(name, 1, 0);
    computeGradient(model, images, labels); // warm-up
    spent.clear();
    const t = performance.now();
    for (let r = 0; r < runs; r++) computeGradient(model, images, labels, { checkpoint: process.argv.includes('--checkpoint') });
    const total = (performance.now() - t) / runs;
    const rows = [...spent].map(([kernel, s]) => ({ kernel, ms: s.ms / runs, calls: s.calls / runs })).sort((a, b) => b.ms - a.ms);
    const inKernels = rows.reduce((a, r) => a + r.ms, 0);
    console.log(`\n${name}, batch ${batch}: ${total.toFixed(0)} ms per gradient, ${inKernels.toFixed(0)} ms in kernels`);
    console.log('| kernel | ms | share | calls |\n| --- | ---: | ---: | ---: |');
    for (const r of rows.slice(0, 20)) console.log(`| ${r.kernel} | ${r.ms.toFixed(1)} | ${((100 * r.ms) / total).toFixed(1)}% | ${r.calls} |`);
    model.dispose();
  }
}

await main();
