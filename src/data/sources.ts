/**
 * Where a network's samples come from, named by one string (the `--dataset` flag and the
 * config key): `mnist` (the embedded default), `synthetic`, or `<format>:<path>` for your own
 * data: `idx:DIR`, `cifar10:DIR`, `npy:DIR`, `csv:FILE`, `images:DIR`. Loaded once per process.
 */
import { resolve } from 'node:path';
import { permuteInPlace, slice, type Dataset } from './dataset.ts';
import { loadCifar10 } from './formats/cifar10.ts';
import { loadCsv } from './formats/csv.ts';
import { loadIdx } from './formats/idx.ts';
import { decodeImageFolderInWorker, loadImageFolder } from './formats/images.ts';
import { loadNpy } from './formats/npy.ts';
import { UINT8_SCALING, type Scaling, type Splits, type TargetScaling, type Task } from './formats/splits.ts';
import { loadMnist } from './mnist.ts';
import { permutation } from './random.ts';
import { syntheticDataset } from './synthetic.ts';
import { parseResize, parseSource } from './source-name.ts';

export { FORMATS, parseResize, parseSource, type Format } from './source-name.ts';

export interface SourceOptions {
  /** What the labels are (CSV, NPY); default auto. */
  task?: Task;
  /** CSV: the column holding the class. */
  labelColumn: string;
  /**
   * The share of all samples held out as the test set, seeded. 0 = the source's own test split
   * (MNIST, IDX, CIFAR-10, NPY and image folders may have one); a source without one then
   * holds out 20%.
   */
  testFraction: number;
  /** Image folders: every image resized to W x H. */
  resize?: string;
  seed: number;
  /** The synthetic set's size. */
  syntheticSize: number;
}

export interface LoadedData {
  train: Dataset;
  /** Absent when the source has no test split and none was carved. */
  test?: Dataset;
  scaling: Scaling;
  /** A regression's standardised targets: how to read a prediction in the source's units. */
  targetScaling?: TargetScaling;
  /** "real MNIST", "csv:/data/iris.csv": for logs and metadata. */
  description: string;
}

/**
 * Holds out a seeded `fraction` of all samples (train and test together) as the test set. A
 * lone split is the loader's own array: it is shuffled in place and cut into two views, so a
 * large dataset is never held twice.
 */
function carveTest(all: Dataset[], fraction: number, seed: number): { train: Dataset; test: Dataset } {
  const joined = all.length === 1 ? all[0]! : {
    ...all[0]!,
    inputs: Buffer.concat(all.map((d) => d.inputs)), labels: Buffer.concat(all.map((d) => d.labels)), count: all.reduce((s, d) => s + d.count, 0),
  };
  const n = Math.max(1, Math.round(joined.count * fraction));
  if (n >= joined.count) throw new Error(`a test fraction of ${fraction} leaves no training samples out of ${joined.count}`);
  // Another stream than the training split's shuffle (shard.ts), so the two stay independent.
  permuteInPlace(joined, permutation(joined.count, (seed ^ 0x7e57) >>> 0));
  return { test: slice(joined, 0, n), train: slice(joined, n, joined.count - n) };
}

const cache = new Map<string, LoadedData>();
const cacheKey = (source: string, o: SourceOptions) => JSON.stringify([source, o]);
/** Image folders decoded ahead, in a worker (preloadSource), until loadSource takes them. */
const decoded = new Map<string, Splits>();
/** Decodes under way: callers that preload the same folder at once share one. */
const decoding = new Map<string, Promise<Splits>>();
const imagesKey = (path: string, resize: string | undefined) => JSON.stringify([path, resize ?? null]);
const resizeOf = (o: SourceOptions) => (o.resize ? parseResize(o.resize) : undefined);

/**
 * Decodes an image folder ahead, in a worker thread that keeps its memory small (see
 * decodeImageFolderInWorker); loadSource then takes what it decoded. Other sources, and a
 * source loaded already, need nothing here. The entry points that train call it before
 * anything loads the data; a loadSource without it decodes on its own thread, as before.
 */
export async function preloadSource(source: string, o: SourceOptions): Promise<void> {
  const s = parseSource(source);
  if (s.format !== 'images' || cache.has(cacheKey(source, o))) return;
  const path = resolve(s.path), key = imagesKey(path, o.resize);
  if (decoded.has(key)) return;
  let under = decoding.get(key);
  if (!under) {
    under = decodeImageFolderInWorker(path, resizeOf(o)).finally(() => decoding.delete(key));
    decoding.set(key, under);
  }
  const splits = await under;
  // A caller that shared the decode finds it taken already when loadSource ran in between.
  if (!cache.has(cacheKey(source, o))) decoded.set(key, splits);
}

export function loadSource(source: string, o: SourceOptions): LoadedData {
  const key = cacheKey(source, o);
  const hit = cache.get(key);
  if (hit) return hit;
  const s = parseSource(source);
  let loaded: { train: Dataset; test?: Dataset; scaling: Scaling; targetScaling?: TargetScaling };
  let description: string;
  if (s.format === 'mnist') {
    loaded = { train: loadMnist('train'), test: loadMnist('test'), scaling: UINT8_SCALING };
    description = 'real MNIST';
  } else if (s.format === 'synthetic') {
    loaded = { train: syntheticDataset(o.syntheticSize, o.seed), scaling: UINT8_SCALING };
    description = `synthetic (${o.syntheticSize} samples)`;
  } else {
    const path = resolve(s.path);
    description = `${s.format}:${path}`;
    switch (s.format) {
      case 'idx': loaded = loadIdx(path); break;
      case 'cifar10': loaded = loadCifar10(path); break;
      case 'npy': loaded = loadNpy(path, o.task); break;
      case 'csv': loaded = loadCsv(path, o.labelColumn, o.task); break;
      case 'images': {
        const ahead = imagesKey(path, o.resize);
        loaded = decoded.get(ahead) ?? loadImageFolder(path, resizeOf(o));
        decoded.delete(ahead);
        break;
      }
    }
  }
  if (o.resize && s.format !== 'images') throw new Error(`--resize applies to image folders (images:DIR), not to ${s.format}`);
  if (o.task === 'regression' && s.format !== 'csv' && s.format !== 'npy') throw new Error(`--task regression needs numeric targets: a csv or npy dataset, not ${s.format}`);
  let { train, test } = loaded;
  // The synthetic set is for quick runs: it has no test set unless one is asked for.
  const fraction = o.testFraction > 0 ? o.testFraction : test || s.format === 'synthetic' ? 0 : 0.2;
  if (fraction > 0) ({ train, test } = carveTest(test ? [train, test] : [train], fraction, o.seed));
  const out: LoadedData = { train, ...(test ? { test } : {}), scaling: loaded.scaling, ...(loaded.targetScaling ? { targetScaling: loaded.targetScaling } : {}), description };
  cache.set(key, out);
  return out;
}
