/**
 * 1,000 rounds of a small model (issue 8's acceptance): every peer's Redis `used_memory` and
 * the peers' process RSS stay within 5% of their round-10 values, so steady rounds allocate
 * nothing that stays. Two in-process peers with real redis-servers and real worker-thread
 * functions. Long: `npm run test:soak`, not part of the default suite.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parseTrainingConfig } from '../../src/config/training.ts';
import type { RoundMetrics } from '../../src/peer/types.ts';
import { LocalPlatform } from '../../src/platform/local/local-platform.ts';
import { TestNetwork } from '../training/in-process-network.ts';

const ROUNDS = Number(process.env.SOAK_ROUNDS ?? 1000);
const config = parseTrainingConfig({
  model: { name: 'cnn', width: 0.25 }, dataset: 'synthetic', syntheticSize: 512, batchSize: 16, batchesPerRound: 2,
  maxRounds: ROUNDS, epochs: 1000, checkEvery: 100_000, validationSize: 0, optimizer: { kind: 'adam', lr: 0.001 }, seed: 5,
});

let platform: LocalPlatform;
beforeAll(async () => {
  platform = new LocalPlatform({ workers: 2 });
  await platform.warm();
});
afterAll(async () => {
  await platform?.close();
});

interface Sample { redis: number[]; rss: number }

it(`${ROUNDS} rounds: Redis used_memory and RSS stay within 5% of round 10`, async () => {
  const net = new TestNetwork(config, platform);
  const sample = async (): Promise<Sample> => {
    (globalThis as { gc?: () => void }).gc?.();
    const infos = await Promise.all(net.clients.slice(0, 2).map((c) => c.info('memory')));
    return { redis: infos.map((i) => Number(/used_memory:(\d+)/.exec(i)![1])), rss: process.memoryUsage().rss };
  };
  try {
    const peers = await net.foundingGroup(2);
    let atTen: Promise<Sample> | undefined;
    peers[0].peer.on('round', (m: RoundMetrics) => { if (m.round === 10) atTen = sample(); });
    const outcomes = await Promise.all(peers.map((p) => p.outcome!));
    expect(outcomes.map((o) => o.state)).toEqual(['done', 'done']);
    expect(outcomes[0].checksum).toBe(outcomes[1].checksum);
    const first = await atTen!;
    const last = await sample();
    const growth = { redis: last.redis.map((b, i) => b / first.redis[i] - 1), rss: last.rss / first.rss - 1 };
    console.log(`after ${ROUNDS} rounds vs round 10: Redis used_memory ${first.redis.map((b, i) => `${(b / 2 ** 20).toFixed(2)} -> ${(last.redis[i] / 2 ** 20).toFixed(2)} MB`).join(', ')}; RSS ${(first.rss / 2 ** 20).toFixed(0)} -> ${(last.rss / 2 ** 20).toFixed(0)} MB`);
    for (const g of growth.redis) expect(g).toBeLessThan(0.05);
    expect(growth.rss).toBeLessThan(0.05);
    await net.close(peers);
  } finally {
    await net.dispose();
  }
});
