/**
 * `peerless bench data`: loading and sharding a data source, as a local run's peers do, timed
 * in a process of its own with its peak memory against the idle process's. By default the
 * source is MNIST's 60,000 training images written out as an image folder of PNGs (one
 * subfolder per digit), the case the target names: under 20 s, and peak memory above
 * idle less than twice the dataset's bytes (the loader decodes one image at a time).
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PNG } from 'pngjs';
import { labelAt } from '../src/data/dataset.ts';
import { loadMnist } from '../src/data/mnist.ts';

export interface DataBenchOptions {
  /** A source string (src/data/sources.ts); default: MNIST's training set as a PNG folder. */
  source?: string;
  peers: number;
  onProgress?: (done: number, total: number, what: string) => void;
}

export interface DataReport {
  source: string;
  samples: number;
  shape: number[];
  peers: number;
  datasetMb: number;
  loadMs: number;
  shardMs: number;
  idleRssMb: number;
  peakRssMb: number;
  /** (peak - idle) / dataset bytes: the target is below 2. */
  memoryOverDataset: number;
}

const ONE = fileURLToPath(new URL('./data-one.mjs', import.meta.url));

/** MNIST's training images as PNGs under dir/<digit>/. */
export function writeMnistFolder(dir: string, onProgress?: DataBenchOptions['onProgress']): void {
  const train = loadMnist('train');
  for (let c = 0; c < 10; c++) mkdirSync(join(dir, String(c)), { recursive: true });
  const png = new PNG({ width: 28, height: 28, colorType: 0, inputColorType: 0, inputHasAlpha: false });
  for (let i = 0; i < train.count; i++) {
    if (i % 2000 === 0) onProgress?.(i, train.count, 'writing MNIST as PNGs');
    png.data = Buffer.from(train.inputs.subarray(i * 784, (i + 1) * 784));
    writeFileSync(join(dir, String(labelAt(train, i)), `${String(i).padStart(5, '0')}.png`), PNG.sync.write(png, { colorType: 0, inputColorType: 0, inputHasAlpha: false }));
  }
}

export async function runDataBench(o: DataBenchOptions): Promise<DataReport> {
  const tmp = o.source ? undefined : mkdtempSync(join(tmpdir(), 'peerless-bench-data-'));
  try {
    if (tmp) writeMnistFolder(tmp, o.onProgress);
    const source = o.source ?? `images:${tmp}`;
    o.onProgress?.(0, 1, `loading ${source}`);
    const stdout = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, [ONE, source, String(o.peers)], { maxBuffer: 16 << 20, timeout: 1_800_000 }, (err, out, stderr) => {
        if (err) reject(new Error(stderr.trim().split('\n').filter((l) => /error/i.test(l)).pop() ?? err.message.split('\n')[0]));
        else resolve(out);
      });
    });
    const m = JSON.parse(stdout.trim().split('\n').pop()!) as Omit<DataReport, 'source' | 'peers' | 'memoryOverDataset'>;
    return { source: o.source ?? 'MNIST training set as 60,000 PNGs (images:)', peers: o.peers, ...m, memoryOverDataset: (m.peakRssMb - m.idleRssMb) / m.datasetMb };
  } finally {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  }
}
