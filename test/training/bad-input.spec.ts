import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedisServer, type RedisServer } from '../../src/cluster/redis-server.ts';
import { parseTrainingConfig } from '../../src/config/training.ts';
import { MNIST_SPEC } from '../../src/data/spec.ts';
import { trainingConfigFrom } from '../../src/cli/training-options.ts';
import { K } from '../../src/peer/net/keys.ts';
import { Peer } from '../../src/peer/peer.ts';
import { PROTOCOL } from '../../src/peer/plan.ts';
import type { PeerData } from '../../src/peer/types.ts';
import { LocalPlatform } from '../../src/platform/local/local-platform.ts';
import { closeRedis, connectRedis, type Redis } from '../../src/tensor/redis-client.ts';
import { freePort } from '../../src/cluster/redis-server.ts';

/**
 * Bad input at the network's edges: each gets a one-line error naming the problem, and no
 * peer's state is damaged. Real redis-servers; the platform is created but never invoked.
 */
let founderServer: RedisServer;
let joinerServer: RedisServer;
let secured: RedisServer;
let founderClient: Redis;
let platform: LocalPlatform;
let founder: Peer;

const data: PeerData = { samples: MNIST_SPEC, batches: 1, batchKeys: () => ({ images: 'x', labels: 'y' }), validation: { imagesKey: 'vx', labelsKey: 'vy', count: 0 } };
const model = { layoutHash: 'aaaa000011112222', length: 8, trainable: 8, ref: { name: 'cnn' } };
const config = parseTrainingConfig({ model: { name: 'cnn' }, dataset: 'synthetic' });

beforeAll(async () => {
  [founderServer, joinerServer, secured] = await Promise.all([startRedisServer(), startRedisServer(), startRedisServer({ password: 'right' })]);
  founderClient = await connectRedis({ url: founderServer.url });
  platform = new LocalPlatform({ workers: 1 });
  founder = new Peer({ id: 'a', redis: { url: founderServer.url }, platform, model, data, shard: { index: 0, count: 2 }, found: { config, initialParams: new Float32Array(8).fill(0.5), roundsPerEpoch: 1 } });
  await founder.start();
});

afterAll(async () => {
  await founder.close();
  await platform.close();
  await closeRedis(founderClient);
  await Promise.all([founderServer.stop(), joinerServer.stop(), secured.stop()]);
});

async function snapshot(c: Redis) {
  return { members: await c.hGetAll(K.members), params: await c.sendCommand(['PL.CHECKSUM', K.params]), round: await c.get(K.round) };
}

describe('bad input at the network edges', () => {
  it('a bootstrap address that does not answer', async () => {
    const port = await freePort();
    const p = new Peer({ id: 'b', redis: { url: joinerServer.url }, platform, model, data, shard: { index: 1, count: 2 }, bootstrap: { url: `redis://127.0.0.1:${port}` } });
    await expect(p.start()).rejects.toThrow(new RegExp(`bootstrap peer redis://127.0.0.1:${port} does not answer`));
    await p.close();
  });

  it('a peer with another model or layout hash is refused, and the network is untouched', async () => {
    const before = await snapshot(founderClient);
    const other = { layoutHash: 'bbbb000011112222', length: 8, trainable: 8, ref: { name: 'cnn' } };
    const p = new Peer({ id: 'b', redis: { url: joinerServer.url }, platform, model: other, data, shard: { index: 1, count: 2 }, bootstrap: { url: founderServer.url } });
    await expect(p.start()).rejects.toThrow(/layout bbbb000011112222 \(8 params\) does not match the network's aaaa000011112222/);
    await p.close();
    expect(await snapshot(founderClient)).toEqual(before);
  });

  it('state or a network of another protocol version is refused with a clear error, and nothing changes', async () => {
    // A network kept by an older Peerless (its plan carries no protocol version).
    const old = await connectRedis({ url: joinerServer.url });
    try {
      await old.flushAll();
      const plan = JSON.parse(String(await founderClient.get(K.config)));
      delete plan.protocol;
      await old.set(K.config, JSON.stringify(plan));
      const resumed = new Peer({ id: 'b', redis: { url: joinerServer.url }, platform, model, data, shard: { index: 1, count: 2 } });
      await expect(resumed.start()).rejects.toThrow(`peer b: its Redis at ${joinerServer.url} holds a network of protocol version 1, and this Peerless speaks version ${PROTOCOL}: start a new run (or use the Peerless that made it)`);
      // One of a newer version: upgrade.
      await old.set(K.config, JSON.stringify({ ...plan, protocol: PROTOCOL + 1 }));
      const newer = new Peer({ id: 'b', redis: { url: joinerServer.url }, platform, model, data, shard: { index: 1, count: 2 } });
      await expect(newer.start()).rejects.toThrow(`holds a network of protocol version ${PROTOCOL + 1}, and this Peerless speaks version ${PROTOCOL}: upgrade this Peerless`);
      await newer.close();
      await old.set(K.config, JSON.stringify(plan));
      await resumed.close();
      // A joiner of this version does not enter an old network either.
      const third = await startRedisServer();
      const joiner = new Peer({ id: 'c', redis: { url: third.url }, platform, model, data, shard: { index: 1, count: 2 }, bootstrap: { url: joinerServer.url } });
      await expect(joiner.start()).rejects.toThrow(`peer c: ${joinerServer.url} holds a network of protocol version 1`);
      await joiner.close();
      await third.stop();
      expect(JSON.parse(String(await old.get(K.config)))).toEqual(plan);
    } finally {
      await old.flushAll();
      await closeRedis(old);
    }
  });

  it('wrong credentials', async () => {
    await expect(connectRedis({ url: secured.url, password: 'wrong' })).rejects.toThrow(/refused the credentials/);
    await expect(connectRedis({ url: secured.url })).rejects.toThrow(/NOAUTH|credentials|cannot reach/);
    const ok = await connectRedis({ url: secured.url, password: 'right' });
    expect(await ok.ping()).toBe('PONG');
    await closeRedis(ok);
  });

  it('an unknown peer id form, and configuration values out of range, name the field', () => {
    expect(() => new Peer({ id: 'no spaces', redis: { url: joinerServer.url }, platform, model, data, shard: { index: 0, count: 1 } })).toThrow(/peer id "no spaces"/);
    expect(() => parseTrainingConfig({ model: { name: 'cnn' }, batchSize: 0 })).toThrow(/invalid training configuration: batchSize/);
    expect(() => parseTrainingConfig({ model: { name: 'alexnet' } })).toThrow(/model.name/);
    expect(() => trainingConfigFrom({ lr: -1 })).toThrow(/optimizer.lr/);
    expect(() => trainingConfigFrom({ aggregation: 'krum:1:2', exchange: 'sharded' })).toThrow(/sharded exchange needs a coordinate-wise/);
    expect(() => trainingConfigFrom({ aggregation: 'mode' })).toThrow(/unknown rule "mode"/);
  });
});
