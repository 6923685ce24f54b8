/**
 * `peerless bench compute`: one gradient (forward, backward, loss) of the zoo's models at
 * batch B on one thread, side by side in one run: the wasm backend, the native backend (wasm
 * with oneDNN's kernels, src/model/native-backend.ts) and PyTorch (Debian's python3-torch, the
 * same architectures in bench/gradient.py), when installed.
 *
 * Every (model, batch, backend) runs in a process of its own (bench/compute-one.mjs,
 * bench/gradient.py), so each row's peak RSS is what one function would need.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { nativeAddon } from '../src/model/native-backend.ts';
import { torchPython } from './round.ts';

export const COMPUTE_BACKENDS = ['wasm', 'native', 'pytorch'] as const;
export type ComputeBackend = (typeof COMPUTE_BACKENDS)[number];

export interface ComputeBenchOptions {
  models: string[];
  batchSizes: number[];
  runs: number;
  /** Which to run (default all three). */
  backends?: ComputeBackend[];
  onProgress?: (done: number, total: number, what: string) => void;
}

export interface ComputeRow {
  model: string;
  batch: number;
  backend: ComputeBackend;
  /** Median over the runs after a warm-up; null when the row could not run (see `error`). */
  msPerGradient: number | null;
  /** Peak resident memory of the process that ran it. */
  peakRssMb: number | null;
  /** msPerGradient / PyTorch's for the same model and batch: below 1 is faster than PyTorch. */
  vsPytorch: number | null;
  /** Why the row has no figures: backend not available, out of memory, ... */
  error?: string;
  /** Whether Peerless ran it with gradient checkpointing (the model's default, as in a function). */
  checkpointed?: boolean;
}

export interface ComputeReport {
  benchmark: 'compute';
  runs: number;
  threads: 1;
  /** oneDNN's version, or why the native backend is not available. */
  native: string;
  rows: ComputeRow[];
}

interface Measured { msPerGradient: number; peakRssMb: number; checkpointed?: boolean }

const ONE = fileURLToPath(new URL('./compute-one.mjs', import.meta.url));
const TORCH = fileURLToPath(new URL('./gradient.py', import.meta.url));

/** Runs one measurement process; its last stdout line is the JSON, else a one-line reason. */
function measure(cmd: string, args: string[]): Promise<Measured | Error> {
  // One thread: the native addon's default; PyTorch sets it itself.
  const env = { ...process.env };
  delete env.PEERLESS_NATIVE_THREADS;
  return new Promise((resolve) => {
    execFile(cmd, args, { env, timeout: 1_800_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (!err) {
        try { return resolve(JSON.parse(stdout.trim().split('\n').pop()!) as Measured); } catch { /* reported below */ }
      }
      resolve(new Error(reasonOf(stderr, err)));
    });
  });
}

function reasonOf(stderr: string, err: Error | null): string {
  if (/Aborted\(\)/.test(stderr)) return 'wasm aborted allocating a tensor: its heap holds at most 4 GiB';
  if (err && 'killed' in err && err.killed) return 'timed out after 30 minutes';
  const lines = stderr.split('\n').map((l) => l.trim()).filter((l) => /error/i.test(l) && l.length < 300);
  return lines.pop() ?? (err?.message.split('\n')[0] ?? 'no result');
}

export async function runComputeBench(o: ComputeBenchOptions): Promise<ComputeReport> {
  const addon = nativeAddon();
  const py = await torchPython();
  const backends = o.backends ?? [...COMPUTE_BACKENDS];
  const total = o.models.length * o.batchSizes.length * backends.length;
  let done = 0;
  const rows: ComputeRow[] = [];
  for (const model of o.models) {
    for (const batch of o.batchSizes) {
      const group: ComputeRow[] = [];
      for (const backend of backends) {
        o.onProgress?.(done++, total, `${model} batch ${batch} on ${backend}`);
        const row: ComputeRow = { model, batch, backend, msPerGradient: null, peakRssMb: null, vsPytorch: null };
        let got: Measured | Error;
        if (backend === 'native' && addon instanceof Error) got = addon;
        else if (backend === 'pytorch' && !py) got = new Error('python3-torch is not installed');
        else if (backend === 'pytorch') got = await measure(py!, [TORCH, String(batch), String(o.runs), model]);
        else got = await measure(process.execPath, [ONE, model, String(batch), backend, String(o.runs)]);
        if (got instanceof Error) row.error = got.message;
        else Object.assign(row, got);
        group.push(row);
      }
      const torch = group.find((r) => r.backend === 'pytorch')?.msPerGradient ?? null;
      for (const r of group) r.vsPytorch = r.msPerGradient !== null && torch !== null ? r.msPerGradient / torch : null;
      rows.push(...group);
    }
  }
  o.onProgress?.(total, total, 'done');
  return {
    benchmark: 'compute', runs: o.runs, threads: 1,
    native: addon instanceof Error ? addon.message : `oneDNN ${addon.info().version}`,
    rows,
  };
}
