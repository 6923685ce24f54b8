/**
 * Decodes an image folder in a worker thread (see decodeImageFolderInWorker) and sends its
 * splits back, their pixel buffers transferred, not copied.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { Dataset } from '../dataset.ts';
import { loadImageFolder } from './images.ts';

const { dir, resize } = workerData as { dir: string; resize?: { width: number; height: number } };
try {
  const splits = loadImageFolder(dir, resize);
  const buffers = (d: Dataset | undefined) => (d ? [d.inputs.buffer, d.labels.buffer] : []);
  parentPort!.postMessage({ splits }, [...buffers(splits.train), ...buffers(splits.test)] as ArrayBuffer[]);
} catch (err) {
  parentPort!.postMessage({ error: (err as Error).message });
}
