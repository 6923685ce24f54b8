import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { describe, expect, it } from 'vitest';
import { train } from '../../src/api.ts';
import { getFlatParams } from '../../src/model/flat.ts';
import { useLocalPlatform } from './local-platform-fixture.ts';
import { checksum } from '../../src/tensor/reference.ts';

/** The library's `train()`: real redis-servers, peers and worker threads, as the CLI runs them. */
const platformOf = useLocalPlatform();

describe('train() from your own code', () => {
  it('trains a tf.LayersModel and returns it with the network\'s final parameters, calling onRound each round', async () => {
    const user = tfl.sequential({ name: 'mine' });
    user.add(tfl.layers.flatten({ name: 'flat', inputShape: [28, 28, 1] }));
    // Seeded initializers: the run (and when it would converge) is the same every time.
    user.add(tfl.layers.dense({ name: 'hidden', units: 32, activation: 'relu', kernelInitializer: tfl.initializers.glorotUniform({ seed: 1 }) }));
    user.add(tfl.layers.dense({ name: 'out', units: 10, activation: 'softmax', kernelInitializer: tfl.initializers.glorotUniform({ seed: 2 }) }));
    const rounds: number[] = [];
    const { model, summary } = await train({
      model: user, data: 'synthetic', peers: 2, rounds: 6, platform: platformOf(),
      optimizer: { kind: 'adam', lr: 0.01 },
      // One convergence check, after the last round: the run cannot stop early on reaching 100%.
      config: { syntheticSize: 1024, batchSize: 64, validationSize: 128, checkEvery: 6, seed: 5 },
      onRound: (m) => { if (m.peer.endsWith('00')) rounds.push(m.round); },
    });
    try {
      expect(summary.identical).toBe(true);
      expect(summary.rounds).toBe(6);
      expect(rounds).toEqual([0, 1, 2, 3, 4, 5]);
      expect(checksum(getFlatParams(model))).toBe(summary.checksums[0]);
      expect(summary.lastValidationAccuracy).toBeGreaterThan(0.5);
      const p = model.predict(tf.zeros([2, 28, 28, 1])) as tf.Tensor;
      expect(p.shape).toEqual([2, 10]);
      p.dispose();
    } finally {
      model.dispose();
      user.dispose();
    }
  });
});
