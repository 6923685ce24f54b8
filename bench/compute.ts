/**
 * `peerless bench compute`: one gradient (forward, backward, loss) of the zoo's models at
 * batch B on one core, side by side in one run: the wasm backend, the native backend (wasm
 * with oneDNN's convolutions, src/model/native-backend.ts) and PyTorch (Debian's
 * python3-torch, the same architectures in bench/gradient.py), when installed.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { initBackend } from '../src/model/backend.ts';
import { computeGradient } from '../src/model/gradient.ts';
import { nativeAddon, useNativeKernels } from '../src/model/native-backend.ts';
import { buildModel } from '../src/model/zoo.ts';
import { median } from './stats.ts';
import { torchPython } from './round.ts';

export interface ComputeBenchOptions {
  models: string[];
  batch: number;
  runs: number;
  onProgress?: (done: number, total: number, what: string) => void;
}

export interface ComputeRow {
  model: string;
  wasmMs: number;
  /** null where the native addon is not built. */
  nativeMs: number | null;
  /** null where python3-torch is not installed. */
  pytorchMs: number | null;
  nativeVsWasm: number | null;
  /** nativeMs / pytorchMs: below 1 is faster than PyTorch. */
  nativeVsPytorch: number | null;
}

export interface ComputeReport {
  benchmark: 'compute';
  batch: number;
  runs: number;
  threads: 1;
  native: string;
  rows: ComputeRow[];
}

function batchOf(n: number): { images: Uint8Array; labels: Uint8Array } {
  const images = new Uint8Array(n * 784);
  for (let i = 0; i < images.length; i++) images[i] = (i * 2654435761) >>> 24;
  return { images, labels: new Uint8Array(n).map((_, i) => i % 10) };
}

function gradientMs(name: string, batch: number, runs: number): number {
  const { images, labels } = batchOf(batch);
  const model = buildModel(name, 1, 0);
  try {
    computeGradient(model, images, labels); // warm-up: kernel setup, heap growth
    const times: number[] = [];
    for (let i = 0; i < runs; i++) {
      const t = performance.now();
      computeGradient(model, images, labels);
      times.push(performance.now() - t);
    }
    return median(times);
  } finally {
    model.dispose();
  }
}

async function pytorchMs(models: string[], batch: number, runs: number): Promise<Record<string, number> | null> {
  const py = await torchPython();
  if (!py) return null;
  const script = fileURLToPath(new URL('./gradient.py', import.meta.url));
  return new Promise((resolve) => {
    execFile(py, [script, String(batch), String(runs), ...models], { timeout: 1_800_000 }, (err, stdout) => {
      if (err) return resolve(null);
      try { resolve(JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, number>); } catch { resolve(null); }
    });
  });
}

export async function runComputeBench(o: ComputeBenchOptions): Promise<ComputeReport> {
  await initBackend('wasm');
  const addon = nativeAddon();
  const total = o.models.length * 2 + 1;
  let done = 0;
  const rows: ComputeRow[] = [];
  for (const name of o.models) {
    o.onProgress?.(done++, total, `${name} on wasm`);
    const wasmMs = gradientMs(name, o.batch, o.runs);
    let nativeMs: number | null = null;
    o.onProgress?.(done++, total, `${name} on native`);
    if (!(addon instanceof Error)) {
      useNativeKernels(true);
      try { nativeMs = gradientMs(name, o.batch, o.runs); } finally { useNativeKernels(false); }
    }
    rows.push({ model: name, wasmMs, nativeMs, pytorchMs: null, nativeVsWasm: nativeMs === null ? null : wasmMs / nativeMs, nativeVsPytorch: null });
  }
  o.onProgress?.(done++, total, 'PyTorch');
  const torch = await pytorchMs(o.models, o.batch, o.runs);
  for (const r of rows) {
    r.pytorchMs = torch?.[r.model] ?? null;
    r.nativeVsPytorch = r.nativeMs !== null && r.pytorchMs !== null ? r.nativeMs / r.pytorchMs : null;
  }
  o.onProgress?.(total, total, 'done');
  return {
    benchmark: 'compute', batch: o.batch, runs: o.runs, threads: 1,
    native: addon instanceof Error ? addon.message : `oneDNN ${addon.info().version}`,
    rows,
  };
}
