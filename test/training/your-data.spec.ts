import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tfl from '@tensorflow/tfjs-layers';
import { afterAll, describe, expect, it } from 'vitest';
import { runLocalCluster } from '../../src/cluster/local-cluster.ts';
import { parseTrainingConfig, type TrainingConfigInput } from '../../src/config/training.ts';
import { labelAt, slice } from '../../src/data/dataset.ts';
import { loadMnist } from '../../src/data/mnist.ts';
import { loadSavedModel } from '../../src/model/export.ts';
import { getFlatParams } from '../../src/model/flat.ts';
import { useLocalPlatform } from './local-platform-fixture.ts';
import { checksum } from '../../src/tensor/reference.ts';

/**
 * Your model, your data, end to end: real redis-servers, real peers, the local platform's
 * worker threads building a user's model from the topology in the peer's Redis, on real MNIST
 * written out in formats a user brings (IDX files, a CSV).
 */
const platformOf = useLocalPlatform();
const tmp = mkdtempSync(join(tmpdir(), 'peerless-your-data-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** An IDX file of unsigned bytes. */
function idx(dims: number[], data: Uint8Array): Buffer {
  const h = Buffer.alloc(4 + 4 * dims.length);
  h[2] = 0x08; h[3] = dims.length;
  dims.forEach((d, i) => h.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([h, data]);
}

const common: Partial<TrainingConfigInput> = {
  batchSize: 64, checkEvery: 5, validationSize: 200, seed: 11, deadlineMs: 30_000, optimizer: { kind: 'adam', lr: 0.003 },
};

describe('your model and your data', () => {
  it('a Keras-style model.json (softmax output, no weights) trains on IDX files, and saves as a model TF.js loads', async () => {
    const data = join(tmp, 'idx');
    mkdirSync(data);
    const train = slice(loadMnist('train'), 0, 3000), test = slice(loadMnist('test'), 0, 1000);
    writeFileSync(join(data, 'train-images-idx3-ubyte'), idx([3000, 28, 28], train.inputs));
    writeFileSync(join(data, 'train-labels-idx1-ubyte'), idx([3000], train.labels));
    writeFileSync(join(data, 't10k-images-idx3-ubyte'), idx([1000, 28, 28], test.inputs));
    writeFileSync(join(data, 't10k-labels-idx1-ubyte'), idx([1000], test.labels));
    // What a user writes: a sequential model ending in softmax, saved as a topology only.
    const user = tfl.sequential({ name: 'my_net' });
    user.add(tfl.layers.conv2d({ name: 'c1', inputShape: [28, 28, 1], filters: 8, kernelSize: 3, activation: 'relu' }));
    user.add(tfl.layers.maxPooling2d({ name: 'p1', poolSize: 2 }));
    user.add(tfl.layers.flatten({ name: 'f' }));
    user.add(tfl.layers.dense({ name: 'out', units: 10, activation: 'softmax' }));
    const modelFile = join(tmp, 'my-net.json');
    writeFileSync(modelFile, JSON.stringify({ modelTopology: user.toJSON(null, false) }));
    user.dispose();

    const save = join(tmp, 'saved');
    const config = parseTrainingConfig({ ...common, model: { name: modelFile }, dataset: `idx:${data}`, epochs: 4, batchesPerRound: 2 });
    const summary = await runLocalCluster({ peers: 2, config, platform: platformOf(), saveDir: save, testEvaluation: true });
    expect(summary.outcomes.map((o) => o.state)).not.toContain('failed');
    expect(summary.identical).toBe(true);
    expect(summary.test?.samples).toBe(1000);
    expect(summary.test?.source).toBe(`idx:${data}`);
    // A function builds the user's model once per warm instance (2 workers here), not per call.
    expect(summary.modelBuilds).toBeLessThanOrEqual(2);
    expect(summary.gradientInvocations).toBeGreaterThanOrEqual(40);
    expect(summary.test!.accuracy).toBeGreaterThan(0.85);

    const json = JSON.parse(readFileSync(join(save, 'model.json'), 'utf8')) as { modelTopology: { config: { name: string } } };
    expect(json.modelTopology.config.name).toMatch(/^custom-[0-9a-f]{12}$/);
    const loaded = await loadSavedModel(save);
    try {
      expect(checksum(getFlatParams(loaded))).toBe(summary.checksums[0]);
    } finally {
      loaded.dispose();
    }
    expect(JSON.parse(readFileSync(join(save, 'metadata.json'), 'utf8'))).toMatchObject({ input: { shape: [28, 28, 1], scaling: { kind: 'divide', by: 255 } } });
  });

  it('the mlp preset trains on a CSV with named classes, a seeded 20% held out as its test set', async () => {
    // 7x7 average-pooled MNIST digits as 49 numeric columns, the class as a word.
    const words = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine'];
    const d = slice(loadMnist('train'), 10_000, 2500);
    const rows = Array.from({ length: d.count }, (_, i) => {
      const px = d.inputs.subarray(i * 784, (i + 1) * 784);
      const f: number[] = [];
      for (let y = 0; y < 7; y++) for (let x = 0; x < 7; x++) {
        let s = 0;
        for (let dy = 0; dy < 4; dy++) for (let dx = 0; dx < 4; dx++) s += px[(y * 4 + dy) * 28 + x * 4 + dx]!;
        f.push(s / 16);
      }
      return `${f.join(',')},${words[labelAt(d, i)]}`;
    });
    const file = join(tmp, 'digits.csv');
    writeFileSync(file, `${Array.from({ length: 49 }, (_, i) => `p${i}`).join(',')},digit\n${rows.join('\n')}\n`);
    const config = parseTrainingConfig({ ...common, model: { name: 'mlp', width: 0.5 }, dataset: `csv:${file}`, labelColumn: 'digit', epochs: 8, batchesPerRound: 2 });
    const summary = await runLocalCluster({ peers: 2, config, platform: platformOf(), testEvaluation: true });
    expect(summary.outcomes.map((o) => o.state)).not.toContain('failed');
    expect(summary.identical).toBe(true);
    expect(summary.test?.samples).toBe(500);
    expect(summary.test!.accuracy).toBeGreaterThan(0.8);
  });
});
