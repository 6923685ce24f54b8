import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportNetwork } from '../../src/cli/commands/export.ts';
import { exportFromRedis } from '../../src/cluster/export-network.ts';
import { runLocalCluster } from '../../src/cluster/local-cluster.ts';
import { startRedisServer } from '../../src/cluster/redis-server.ts';
import { prepareModel } from '../../src/cluster/training-setup.ts';
import { parseTrainingConfig } from '../../src/config/training.ts';
import { K } from '../../src/peer/net/keys.ts';
import { LocalPlatform } from '../../src/platform/local/local-platform.ts';
import { closeRedis, connectRedis } from '../../src/tensor/redis-client.ts';
import { checksum } from '../../src/tensor/reference.ts';

/**
 * The model out of a network: checkpoints while it trains, `peerless export` from a stopped
 * run's state, and `--init` from what was exported. Real redis-servers, peers and workers.
 */
let platform: LocalPlatform;
const tmp = mkdtempSync(join(tmpdir(), 'peerless-export-'));

beforeAll(async () => {
  platform = new LocalPlatform({ workers: 2 });
  await platform.warm();
});

afterAll(async () => {
  await platform.close();
  rmSync(tmp, { recursive: true, force: true });
});

const config = parseTrainingConfig({
  model: { name: 'resnet18', width: 0.125 }, dataset: 'synthetic', syntheticSize: 640, batchSize: 32, batchesPerRound: 2,
  maxRounds: 5, validationSize: 64, checkEvery: 5, seed: 9, optimizer: { kind: 'sgd', lr: 0.05 },
});

describe('exporting a network\'s model', () => {
  it('checkpoints every N rounds, export --data-dir gives --save\'s weight bytes, and --init starts from them', async () => {
    const dataDir = join(tmp, 'run'), save = join(tmp, 'saved'), exported = join(tmp, 'exported');
    const logs: string[] = [];
    const summary = await runLocalCluster({ peers: 2, config, platform, dataDir, saveDir: save, checkpointEvery: 2, onLog: (m) => logs.push(m) });
    expect(summary.identical).toBe(true);
    // The model before rounds 2 and 4, written by the first peer while the network went on.
    for (const r of [2, 4]) expect(existsSync(join(save, `round-${r}`, 'weights.bin'))).toBe(true);
    expect(logs.filter((l) => l.startsWith('checkpoint:'))).toHaveLength(2);
    expect(JSON.parse(readFileSync(join(save, 'round-4', 'metadata.json'), 'utf8'))).toMatchObject({ rounds: 4 });

    const r = await exportNetwork(exported, { dataDir, json: true });
    expect(r.round).toBe(5);
    expect(r.checksum).toBe(summary.checksums[0]);
    expect(Buffer.compare(readFileSync(join(exported, 'weights.bin')), readFileSync(join(save, 'weights.bin')))).toBe(0);

    const again = await prepareModel(parseTrainingConfig({ ...config, model: { name: join(exported, 'model.json') } }));
    expect(checksum(again.initialParams)).toBe(summary.checksums[0]);
    expect(again.info.length).toBe(summary.parameters);
  });

  it('a live peer\'s parameters are copied only between updates: a half-applied update is waited out', async () => {
    const dataDir = join(tmp, 'live');
    await runLocalCluster({ peers: 1, config: { ...config, maxRounds: 1 }, platform, dataDir });
    const server = await startRedisServer({ dir: join(dataDir, 'peer-0'), config: { appendonly: 'yes' } });
    const c = await connectRedis({ url: server.url });
    try {
      const round = Number(await c.get(K.round));
      await c.set(K.updatedPieces(round), '\x01');
      await expect(exportFromRedis(c, join(tmp, 'half'), { waitMs: 200 })).rejects.toThrow(/was updating its parameters/);
      expect(existsSync(join(tmp, 'half', 'weights.bin'))).toBe(false);
      await c.del(K.updatedPieces(round));
      expect((await exportFromRedis(c, join(tmp, 'whole'))).round).toBe(round);
    } finally {
      await closeRedis(c);
      await server.stop();
    }
  });

  it('bad export requests get one line', async () => {
    await expect(exportNetwork(join(tmp, 'x'), {})).rejects.toThrow(/needs one of --redis URL .* or --data-dir D/);
    await expect(exportNetwork(join(tmp, 'x'), { dataDir: join(tmp, 'nowhere') })).rejects.toThrow(/no peer-0 folder/);
  });
});
