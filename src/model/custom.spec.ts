import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SampleSpec } from '../data/spec.js';
import { initBackend } from './backend.js';
import { buildFromTopology, canonicalTopology, readModelFile } from './custom.js';
import { exportModel } from './export.js';
import { getFlatParams, getLayout, setFlatParams } from './flat.js';
import { computeGradient, evaluate } from './gradient.js';
import { relError, seeded } from './test-util.js';

const tmp = mkdtempSync(join(tmpdir(), 'peerless-custom-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A small tabular classifier as a user would write it, ending in `activation`. */
function tabular(units: number, activation: string, name = 'user'): tfl.LayersModel {
  const m = tfl.sequential({ name });
  m.add(tfl.layers.dense({ name: 'hidden', inputShape: [6], units: 8, activation: 'relu' }));
  m.add(tfl.layers.batchNormalization({ name: 'bn', momentum: 0.99 }));
  m.add(tfl.layers.dense({ name: 'out', units, activation: activation as 'linear' }));
  return m;
}

/** Float32 features of `n` samples and their classes, as a dataset stores them. */
function floatBatch(n: number, classes: number): { inputs: Uint8Array; labels: Uint8Array } {
  const x = seeded(n * 6, 5);
  return { inputs: new Uint8Array(x.buffer), labels: Uint8Array.from({ length: n }, (_, i) => i % classes) };
}

/** Builds `topology` through the canonical form with `params`: what a function computes with. */
async function asNetwork(model: tfl.LayersModel, params?: Float32Array): Promise<tfl.LayersModel> {
  const { topology } = canonicalTopology((model.toJSON(null, false) as Record<string, unknown>), 'test');
  const built = await buildFromTopology(topology);
  if (params) setFlatParams(built, params);
  return built;
}

describe('your own Layers model', () => {
  beforeAll(async () => {
    await initBackend('wasm');
  });

  it('a softmax output trains as its logits do: the same gradient and loss', async () => {
    const spec: SampleSpec = { shape: [6], dtype: 'float32', classes: 3 };
    const probs = await asNetwork(tabular(3, 'softmax'));
    const params = getFlatParams(probs);
    const logits = await asNetwork(tabular(3, 'linear', 'logits'), params);
    const { inputs, labels } = floatBatch(12, 3);
    const a = computeGradient(probs, inputs, labels, { samples: spec });
    const b = computeGradient(logits, inputs, labels, { samples: spec });
    expect(relError(a.gradient, b.gradient)).toBeLessThan(1e-4);
    expect(a.loss).toBeCloseTo(b.loss, 5);
    expect(a.correct).toBe(b.correct);
    expect(evaluate(probs, inputs, labels, { samples: spec }).loss).toBeCloseTo(evaluate(logits, inputs, labels, { samples: spec }).loss, 4);
  });

  it('one sigmoid output is a binary classifier, as one logit is', async () => {
    const spec: SampleSpec = { shape: [6], dtype: 'float32', classes: 2 };
    const probs = await asNetwork(tabular(1, 'sigmoid'));
    const logits = await asNetwork(tabular(1, 'linear', 'logit'), getFlatParams(probs));
    const { inputs, labels } = floatBatch(10, 2);
    const a = computeGradient(probs, inputs, labels, { samples: spec });
    const b = computeGradient(logits, inputs, labels, { samples: spec });
    expect(relError(a.gradient, b.gradient)).toBeLessThan(1e-4);
    expect(a.loss).toBeCloseTo(b.loss, 5);
    expect(a.correct).toBe(b.correct);
  });

  it('a regression head: mean squared error, whose gradient is the textbook one', async () => {
    const spec: SampleSpec = { shape: [6], dtype: 'float32', classes: 0, targets: 1 };
    const m = tfl.sequential({ name: 'linear' });
    m.add(tfl.layers.dense({ name: 'out', inputShape: [6], units: 1, useBias: false }));
    const model = await asNetwork(m);
    const w = seeded(6, 3);
    setFlatParams(model, w);
    const n = 8;
    const x = seeded(n * 6, 4), y = seeded(n, 5);
    const out = computeGradient(model, new Uint8Array(x.buffer), new Uint8Array(y.buffer), { samples: spec });
    // d/dw of mean((x.w - y)^2) = 2/n sum (x.w - y) x
    const expected = new Float32Array(6);
    let mse = 0, mae = 0;
    for (let i = 0; i < n; i++) {
      let p = 0;
      for (let j = 0; j < 6; j++) p += x[i * 6 + j]! * w[j]!;
      const e = p - y[i]!;
      mse += (e * e) / n; mae += Math.abs(e);
      for (let j = 0; j < 6; j++) expected[j] += (2 / n) * e * x[i * 6 + j]!;
    }
    expect(relError(out.gradient, expected)).toBeLessThan(1e-5);
    expect(out.loss).toBeCloseTo(mse, 5);
    expect(out.absError).toBeCloseTo(mae, 4);
    expect(out.correct).toBe(0);
    const bad = Float32Array.of(...y.subarray(0, 7), NaN);
    expect(() => computeGradient(model, new Uint8Array(x.buffer), new Uint8Array(bad.buffer), { samples: spec })).toThrow('target value NaN of sample 7 is not a finite number');
    expect(() => computeGradient(model, new Uint8Array(x.buffer), new Uint8Array(seeded(n * 2, 6).buffer), { samples: { ...spec, targets: 2 } })).toThrow(/1 outputs, the data 2 regression target\(s\)/);
  });

  it('the canonical topology: momentum 0, named by its hash, which changes with the architecture only', () => {
    const json = tabular(3, 'softmax').toJSON(null, false) as { class_name: string; config: Record<string, unknown> };
    const a = canonicalTopology(json, 'm.json');
    expect(a.name).toMatch(/^custom-[0-9a-f]{12}$/);
    expect(JSON.parse(a.topology).config.layers.find((l: { class_name: string }) => l.class_name === 'BatchNormalization').config.momentum).toBe(0);
    // The same model under another name, its keys in another order: the same canonical form.
    const reordered = JSON.parse(JSON.stringify({ config: { ...json.config, name: 'other' }, class_name: json.class_name }));
    expect(canonicalTopology(reordered, 'm.json')).toEqual(a);
    expect(canonicalTopology((tabular(3, 'linear').toJSON(null, false) as Record<string, unknown>), 'm.json').name).not.toBe(a.name);
    expect(() => canonicalTopology({ layers: [] }, 'm.json')).toThrow('m.json: not a TF.js Layers model topology');
  });

  it('a model.json with weights (as train --save writes it) brings them back as the initial parameters', async () => {
    const model = await asNetwork(tabular(3, 'softmax'));
    const params = Float32Array.from(seeded(getLayout(model).size, 9));
    const dir = join(tmp, 'saved');
    await exportModel(dir, model, params, { samples: { shape: [6], dtype: 'float32', classes: 3 }, scaling: { kind: 'divide', by: 1 } },
      { checksum: '-', testAccuracy: null, rounds: 0, config: {} });
    const file = readModelFile(join(dir, 'model.json'));
    expect(file.weights).toBeDefined();
    const back = await buildFromTopology(file.topology, file.weights);
    expect(getLayout(back).hash).toBe(getLayout(model).hash);
    expect(Buffer.compare(Buffer.from(getFlatParams(back).buffer), Buffer.from(params.buffer))).toBe(0);
  });

  it('a model that does not fit the data, and a model file that is not one, get one line naming why', async () => {
    const model = await asNetwork(tabular(3, 'softmax'));
    const { inputs, labels } = floatBatch(4, 3);
    expect(() => computeGradient(model, inputs, labels, { samples: { shape: [6], dtype: 'float32', classes: 10 } }))
      .toThrow(/has 3 outputs, the data 10 classes: give the last layer 10 units$/);
    expect(() => computeGradient(model, new Uint8Array(4 * 5 * 4), labels, { samples: { shape: [5], dtype: 'float32', classes: 3 } }))
      .toThrow(/takes inputs of shape \[6\], the data's are \[5\]/);
    const relu = await asNetwork(tabular(3, 'relu'));
    expect(() => computeGradient(relu, inputs, labels, { samples: { shape: [6], dtype: 'float32', classes: 3 } })).toThrow(/ends with a relu activation/);
    const bad = new Float32Array(4 * 6).fill(NaN);
    expect(() => computeGradient(model, new Uint8Array(bad.buffer), labels, { samples: { shape: [6], dtype: 'float32', classes: 3 } })).toThrow('input value NaN in sample 0 is not a finite number');
    const unknown = canonicalTopology({ class_name: 'Sequential', config: { name: 'x', layers: [{ class_name: 'FancyDense', config: { name: 'd', units: 3, batch_input_shape: [null, 4] } }] } }, 'fancy.json');
    await expect(buildFromTopology(unknown.topology, undefined, 'fancy.json')).rejects.toThrow(/^fancy\.json: cannot build the model custom-[0-9a-f]+: Unknown layer: FancyDense$/);
    writeFileSync(join(tmp, 'broken.json'), '{"modelTopology": ');
    expect(() => readModelFile(join(tmp, 'broken.json'))).toThrow(/broken\.json: cannot read the model/);
    writeFileSync(join(tmp, 'missing.json'), JSON.stringify({ modelTopology: (model.toJSON(null, false) as Record<string, unknown>), weightsManifest: [{ paths: ['w.bin'], weights: [] }] }));
    expect(() => readModelFile(join(tmp, 'missing.json'))).toThrow(/its weights file "w.bin" is not at/);
    tf.disposeVariables();
  });
});
