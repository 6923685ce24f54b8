import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedisServer, type RedisServer } from '../cluster/redis-server.ts';
import { BUFFER_REPLIES, closeRedis, connectRedis, type Redis } from '../tensor/redis-client.ts';
import { select } from './dataset.ts';
import { inputSize, MNIST_SPEC } from './spec.ts';
import { loadMnist } from './mnist.ts';
import { splitData } from './shard.ts';
import { DataKeys, storeBatches, storeSamples } from './store.ts';

const PIXELS = inputSize(MNIST_SPEC);

let server: RedisServer;
let client: Redis;
beforeAll(async () => {
  server = await startRedisServer();
  client = await connectRedis({ url: server.url });
});
afterAll(async () => {
  if (client) await closeRedis(client);
  await server?.stop();
});

const getBytes = async (key: string) => (await client.withTypeMapping(BUFFER_REPLIES.typeMapping).get(key)) as Buffer | null;

describe('a peer stores its shard in its Redis (real redis-server)', () => {
  it('stores every batch of a real MNIST shard byte for byte, the last batch smaller', async () => {
    const mnist = loadMnist('train');
    const split = splitData(mnist.count, { seed: 1, peers: 20, validation: 0 });
    const shard = select(mnist, split.shards[3]);
    const batches = await storeBatches(client, shard, 64);
    expect(batches).toBe(Math.ceil(3000 / 64));
    for (const i of [0, 17, batches - 1]) {
      const n = Math.min(64, shard.count - i * 64);
      const x = await getBytes(DataKeys.batchImages(i));
      const y = await getBytes(DataKeys.batchLabels(i));
      expect(x?.length).toBe(n * PIXELS);
      expect(Buffer.compare(x!, Buffer.from(shard.inputs.subarray(i * 64 * PIXELS, (i * 64 + n) * PIXELS)))).toBe(0);
      expect(Buffer.compare(y!, Buffer.from(shard.labels.subarray(i * 64, i * 64 + n)))).toBe(0);
    }
    expect(await getBytes(DataKeys.batchImages(batches))).toBeNull();
  });

  it('stores a held-out set under two keys', async () => {
    const test = loadMnist('test');
    await storeSamples(client, test, DataKeys.testImages, DataKeys.testLabels);
    expect(Buffer.compare((await getBytes(DataKeys.testImages))!, Buffer.from(test.inputs))).toBe(0);
    expect(Buffer.compare((await getBytes(DataKeys.testLabels))!, Buffer.from(test.labels))).toBe(0);
  });
});
