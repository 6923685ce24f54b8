/**
 * CIFAR-10's binary version: a folder with `data_batch_1.bin` ... `data_batch_5.bin` and
 * `test_batch.bin`, each record one label byte and 3072 pixel bytes (the red, green and blue
 * planes of a 32x32 image), and `batches.meta.txt` with the class names. Stored as
 * 32x32x3 uint8, channels last, as the models take them.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Dataset } from '../dataset.ts';
import { readDataFile } from '../read-file.ts';
import { UINT8_SCALING, type Splits } from './splits.ts';

const SIDE = 32, PLANE = SIDE * SIDE, RECORD = 1 + 3 * PLANE;
const SPEC = { shape: [SIDE, SIDE, 3], dtype: 'uint8' as const, classes: 10 };

/** Parses one batch file's records into HWC images and labels; errors name the file. */
export function parseCifarBatch(bytes: Uint8Array, file: string): { inputs: Uint8Array; labels: Uint8Array; count: number } {
  if (bytes.length === 0 || bytes.length % RECORD !== 0) throw new Error(`${file}: ${bytes.length} bytes is not a whole number of ${RECORD}-byte CIFAR-10 records`);
  const count = bytes.length / RECORD;
  const inputs = new Uint8Array(count * 3 * PLANE);
  const labels = new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    const r = bytes.subarray(i * RECORD, (i + 1) * RECORD);
    if (r[0]! > 9) throw new Error(`${file}: record ${i} has label ${r[0]}, CIFAR-10 has classes 0-9`);
    labels[i] = r[0]!;
    const out = inputs.subarray(i * 3 * PLANE);
    for (let p = 0; p < PLANE; p++) {
      out[3 * p] = r[1 + p]!;
      out[3 * p + 1] = r[1 + PLANE + p]!;
      out[3 * p + 2] = r[1 + 2 * PLANE + p]!;
    }
  }
  return { inputs, labels, count };
}

function concat(parts: { inputs: Uint8Array; labels: Uint8Array; count: number }[], names: string[] | undefined): Dataset {
  const count = parts.reduce((s, p) => s + p.count, 0);
  const inputs = new Uint8Array(count * 3 * PLANE), labels = new Uint8Array(count);
  let at = 0;
  for (const p of parts) { inputs.set(p.inputs, at * 3 * PLANE); labels.set(p.labels, at); at += p.count; }
  return { inputs, labels, count, spec: SPEC, ...(names ? { classNames: names } : {}) };
}

const read = (file: string): Uint8Array => new Uint8Array(readDataFile(file, 'CIFAR-10'));

export function loadCifar10(dir: string): Splits {
  const trainFiles = [1, 2, 3, 4, 5].map((i) => join(dir, `data_batch_${i}.bin`)).filter((f) => existsSync(f));
  if (trainFiles.length === 0) throw new Error(`${dir}: no CIFAR-10 training batches (data_batch_1.bin ... data_batch_5.bin)`);
  const meta = join(dir, 'batches.meta.txt');
  const names = existsSync(meta) ? readFileSync(meta, 'utf8').split('\n').map((s) => s.trim()).filter(Boolean) : undefined;
  const train = concat(trainFiles.map((f) => parseCifarBatch(read(f), f)), names?.length === 10 ? names : undefined);
  const testFile = join(dir, 'test_batch.bin');
  const test = existsSync(testFile) ? concat([parseCifarBatch(read(testFile), testFile)], train.classNames) : undefined;
  return { train, test, scaling: UINT8_SCALING };
}
