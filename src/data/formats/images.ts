/**
 * A folder of images, one subfolder per class (its name is the class's), PNG or JPEG, decoded
 * by pngjs and jpeg-js one at a time. With `train/` and `test/` subfolders, each holds the
 * classes and gives the split. Stored as uint8, H x W x C: one channel when every training
 * image is grey, else three (alpha dropped). Images of another size than the first are an
 * error unless `resize` (W x H) is given, which resizes every image bilinearly.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { Worker } from 'node:worker_threads';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { encodeLabels, type Dataset } from '../dataset.ts';
import { UINT8_SCALING, type Splits } from './splits.ts';

interface Rgba { width: number; height: number; data: Uint8Array }

const EXTENSIONS = new Set(['.png', '.jpg', '.jpeg']);

/** Decodes one PNG or JPEG into RGBA; errors name the file. */
export function decodeImage(file: string): Rgba {
  const bytes = readFileSync(file);
  try {
    if (bytes[0] === 0x89 && bytes[1] === 0x50) {
      const png = PNG.sync.read(bytes);
      return { width: png.width, height: png.height, data: new Uint8Array(png.data.buffer, png.data.byteOffset, png.data.length) };
    }
    if (bytes[0] === 0xff && bytes[1] === 0xd8) {
      const j = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: true, maxMemoryUsageInMB: 512 });
      return { width: j.width, height: j.height, data: j.data };
    }
  } catch (err) {
    throw new Error(`${file}: cannot decode the image: ${(err as Error).message}`);
  }
  throw new Error(`${file}: neither a PNG nor a JPEG image`);
}

/** Bilinear resize of RGBA to width x height (pixel centres aligned, as most libraries do). */
export function resizeRgba(img: Rgba, width: number, height: number): Rgba {
  if (img.width === width && img.height === height) return img;
  const out = new Uint8Array(width * height * 4);
  const sx = img.width / width, sy = img.height / height;
  for (let y = 0; y < height; y++) {
    const fy = Math.max(0, (y + 0.5) * sy - 0.5), y0 = Math.min(img.height - 1, Math.floor(fy)), y1 = Math.min(img.height - 1, y0 + 1), wy = fy - y0;
    for (let x = 0; x < width; x++) {
      const fx = Math.max(0, (x + 0.5) * sx - 0.5), x0 = Math.min(img.width - 1, Math.floor(fx)), x1 = Math.min(img.width - 1, x0 + 1), wx = fx - x0;
      for (let c = 0; c < 4; c++) {
        const at = (yy: number, xx: number) => img.data[(yy * img.width + xx) * 4 + c]!;
        const v = (1 - wy) * ((1 - wx) * at(y0, x0) + wx * at(y0, x1)) + wy * ((1 - wx) * at(y1, x0) + wx * at(y1, x1));
        out[(y * width + x) * 4 + c] = Math.round(v);
      }
    }
  }
  return { width, height, data: out };
}

const subfolders = (dir: string): string[] => readdirSync(dir).filter((n) => !n.startsWith('.') && statSync(join(dir, n)).isDirectory()).sort();

/**
 * Every image under `dir`/<class>/, with its class index. A class folder without images is an
 * error (a training class nothing teaches); a test split may lack a class.
 */
function listImages(dir: string, classes: string[], emptyIsError: boolean): { file: string; label: number }[] {
  return classes.flatMap((c, label) => {
    const folder = join(dir, c);
    if (!existsSync(folder)) return [];
    const files = readdirSync(folder).filter((f) => EXTENSIONS.has(extname(f).toLowerCase())).sort();
    if (files.length === 0 && emptyIsError) throw new Error(`${folder}: an empty class folder (no PNG or JPEG images)`);
    return files.map((f) => ({ file: join(folder, f), label }));
  });
}

const isGrey = (img: Rgba): boolean => {
  for (let p = 0; p < img.data.length; p += 4) if (img.data[p] !== img.data[p + 1] || img.data[p] !== img.data[p + 2]) return false;
  return true;
};

/**
 * Decodes `items` one at a time straight into the stored layout, so memory holds the dataset
 * and one decoded image: grey (one channel) until the first colour image, then three (the
 * grey ones so far copied across). With `channels` fixed (a test split follows its training
 * split), a colour image becomes grey as the mean of its channels.
 */
function toDataset(items: { file: string; label: number }[], classes: string[], size: { width: number; height: number } | undefined, channels: number | undefined): { set: Dataset; size: { width: number; height: number } } {
  let w = size?.width ?? 0, h = size?.height ?? 0;
  let c = channels ?? 1;
  let inputs = new Uint8Array(0);
  items.forEach(({ file }, i) => {
    let img = decodeImage(file);
    if (size) img = resizeRgba(img, size.width, size.height);
    if (i === 0) { w = img.width; h = img.height; inputs = new Uint8Array(items.length * w * h * c); }
    if (img.width !== w || img.height !== h) throw new Error(`${file}: ${img.width}x${img.height}, the first image ${w}x${h}: give --resize WxH`);
    if (c === 1 && channels === undefined && !isGrey(img)) {
      const rgb = new Uint8Array(items.length * w * h * 3);
      for (let p = 0; p < i * w * h; p++) rgb.fill(inputs[p]!, 3 * p, 3 * p + 3);
      inputs = rgb;
      c = 3;
    }
    const out = inputs.subarray(i * w * h * c, (i + 1) * w * h * c);
    for (let p = 0; p < w * h; p++) {
      const d = img.data;
      if (c === 3) { out[3 * p] = d[4 * p]!; out[3 * p + 1] = d[4 * p + 1]!; out[3 * p + 2] = d[4 * p + 2]!; } else out[p] = Math.round((d[4 * p]! + d[4 * p + 1]! + d[4 * p + 2]!) / 3);
    }
  });
  const labels = encodeLabels(classes.length, items.length, (i) => items[i]!.label);
  return {
    set: { inputs, labels, count: items.length, spec: { shape: [h, w, c], dtype: 'uint8', classes: Math.max(2, classes.length) }, classNames: classes },
    size: { width: w, height: h },
  };
}

export function loadImageFolder(dir: string, resize?: { width: number; height: number }): Splits {
  if (!existsSync(dir)) throw new Error(`${dir}: no such image folder`);
  const top = subfolders(dir);
  const split = top.includes('train');
  const trainDir = split ? join(dir, 'train') : dir;
  const classes = subfolders(trainDir);
  if (classes.length < 2) throw new Error(`${trainDir}: ${classes.length} class folder(s); an image folder has one subfolder per class, at least two`);
  const trainItems = listImages(trainDir, classes, true);
  const train = toDataset(trainItems, classes, resize, undefined);
  const testDir = join(dir, 'test');
  if (!split || !existsSync(testDir)) return { train: train.set, scaling: UINT8_SCALING };
  const unknown = subfolders(testDir).filter((c) => !classes.includes(c));
  if (unknown.length > 0) throw new Error(`${testDir}: class folder(s) ${unknown.join(', ')} are not among the training classes`);
  const testItems = listImages(testDir, classes, false);
  if (testItems.length === 0) return { train: train.set, scaling: UINT8_SCALING };
  const test = toDataset(testItems, classes, train.size, train.set.spec.shape[2]);
  return { train: train.set, test: test.set, scaling: UINT8_SCALING };
}

/**
 * loadImageFolder in a worker thread whose young generation is capped at 1 MB. Decoding
 * churns through small buffers, and on the main thread that grew V8's young generation to its
 * maximum, which it keeps. Loading and sharding 60,000 MNIST PNGs from the built package
 * (`peerless bench data`): 1.97x the dataset's memory above idle with 1 MB, 2.01-2.05x with
 * 4 MB; decoded on the main thread, the load alone took 2.34x. The pixels come back without a
 * copy.
 */
export function decodeImageFolderInWorker(dir: string, resize?: { width: number; height: number }): Promise<Splits> {
  const worker = new Worker(new URL('./image-worker-entry.mjs', import.meta.url), {
    workerData: { dir, resize }, resourceLimits: { maxYoungGenerationSizeMb: 1 },
  });
  return new Promise<Splits>((resolve, reject) => {
    worker.once('message', (m: { splits?: Splits; error?: string }) => (m.splits ? resolve(m.splits) : reject(new Error(m.error))));
    worker.once('error', reject);
    // After a message this changes nothing (the promise is settled); before one, the worker died.
    worker.once('exit', (code) => reject(new Error(`${dir}: the image decoder ended (exit ${code}) before it finished`)));
  }).finally(() => { void worker.terminate(); });
}
