/**
 * Your own model: any TF.js Layers model, given as a `model.json` (the TF.js Layers format that
 * `model.save`, `tensorflowjs_converter` and `peerless train --save` write), with or without
 * its weights. Its topology is stored in each peer's Redis and identified by a hash, and the
 * functions build it from there once per warm instance.
 *
 * Two rules make a user's model fit the network, applied to the topology before anything
 * else, so the hash covers them:
 *   - batch norm runs with momentum 0: its moving statistics then hold the batch's after a
 *     training pass, which the network averages over batches and peers (see flat.ts);
 *   - the model is named `custom-<hash>`, so its layout hash changes with any change of the
 *     architecture, not only of its weights' names and shapes.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';

type Json = Record<string, unknown>;

export interface ModelFile {
  /** The canonical topology (momentum 0, named by its hash) as JSON text. */
  topology: string;
  /** `custom-<hash>`: the model's name, in its layout and in function events. */
  name: string;
  /** The file's weights, when it has them: the network's initial parameters. */
  weights?: { specs: tf.io.WeightsManifestEntry[]; data: ArrayBuffer };
}

/** Sets every batch norm's momentum to 0, at any depth of the topology. */
function zeroMomentum(node: unknown): void {
  if (Array.isArray(node)) { node.forEach(zeroMomentum); return; }
  if (node === null || typeof node !== 'object') return;
  const o = node as Json;
  if (o.class_name === 'BatchNormalization' && o.config && typeof o.config === 'object') (o.config as Json).momentum = 0;
  for (const v of Object.values(o)) zeroMomentum(v);
}

/** Keys sorted at every depth: the same topology gives the same text, whatever wrote it. */
function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (v === null || typeof v !== 'object') return v;
  return Object.fromEntries(Object.keys(v as Json).sort().map((k) => [k, canonical((v as Json)[k])]));
}

/**
 * The canonical form of a Layers topology: `{class_name, config}` (Keras' `model_config`
 * wrapper and training config dropped), momentum 0, named `custom-<hash>`.
 */
export function canonicalTopology(topology: unknown, source: string): { topology: string; name: string } {
  let t = topology as Json;
  if (t && typeof t === 'object' && 'model_config' in t) t = t.model_config as Json;
  if (!t || typeof t !== 'object' || typeof t.class_name !== 'string' || !t.config || typeof t.config !== 'object') {
    throw new Error(`${source}: not a TF.js Layers model topology (expected "modelTopology" with "class_name" and "config")`);
  }
  const copy = JSON.parse(JSON.stringify({ class_name: t.class_name, config: t.config })) as Json;
  zeroMomentum(copy);
  (copy.config as Json).name = 'custom';
  const hash = createHash('sha256').update(JSON.stringify(canonical(copy))).digest('hex').slice(0, 12);
  const name = `custom-${hash}`;
  (copy.config as Json).name = name;
  return { topology: JSON.stringify(canonical(copy)), name };
}

/**
 * Reads a model.json: `{modelTopology, weightsManifest?}` or a bare `{class_name, config}`.
 * Weight files named by the manifest are read from beside it; the manifest is optional, but
 * one that names a missing file is an error.
 */
export function readModelFile(path: string): ModelFile {
  let json: Json;
  try {
    json = JSON.parse(readFileSync(path, 'utf8')) as Json;
  } catch (err) {
    throw new Error(`${path}: cannot read the model: ${(err as Error).message.split('\n')[0]}`);
  }
  const { topology, name } = canonicalTopology(json.modelTopology ?? json, path);
  const manifest = json.weightsManifest as tf.io.WeightsManifestConfig | undefined;
  if (!manifest || manifest.length === 0) return { topology, name };
  const specs: tf.io.WeightsManifestEntry[] = [];
  const parts: Buffer[] = [];
  for (const group of manifest) {
    for (const p of group.paths) {
      const file = join(dirname(path), p);
      if (!existsSync(file)) throw new Error(`${path}: its weights file "${p}" is not at ${file}`);
      parts.push(readFileSync(file));
    }
    specs.push(...group.weights);
  }
  const all = Buffer.concat(parts);
  return { topology, name, weights: { specs, data: all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength) } };
}

/**
 * Builds the model of a canonical topology (with `weights`, else tfjs' own initial values).
 * `source` (the file) names it in an error: "m.json: cannot build the model: Unknown layer:
 * FancyDense".
 */
export async function buildFromTopology(topology: string, weights?: ModelFile['weights'], source?: string): Promise<tfl.LayersModel> {
  const artifacts: tf.io.ModelArtifacts = { modelTopology: JSON.parse(topology) as Json, format: 'layers-model' };
  if (weights) { artifacts.weightSpecs = weights.specs; artifacts.weightData = weights.data; }
  try {
    return await tfl.loadLayersModel(tf.io.fromMemory(artifacts));
  } catch (err) {
    // tfjs' messages go on with advice over several lines; the first says what is wrong.
    const why = (err as Error).message.split('\n')[0]!.replace(/\. This may be due to.*$/, '');
    throw new Error(`${source ? `${source}: ` : ''}cannot build the model ${(JSON.parse(topology) as { config: { name: string } }).config.name}: ${why}`);
  }
}

/** Whether a model reference names a model.json (and not a preset of the zoo). */
export const isModelFile = (name: string): boolean => name.endsWith('.json');
