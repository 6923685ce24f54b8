/**
 * One peer of `bench round`, in its own worker thread (its own event loop, as a peer process
 * of a real network has): a real Peer whose functions are writers pushing pre-made gradients
 * in chunks, as a gradient function does. Messages: 'started' once it joined, then one
 * { round } per round, then 'finished' (or { error }).
 */
import type { Exchange } from '../src/config/exchanges.ts';
import { parentPort, workerData } from 'node:worker_threads';
import { parseTrainingConfig } from '../src/config/training.ts';
import { MNIST_SPEC } from '../src/data/spec.ts';
import type { FunctionEvents, FunctionName, FunctionResults, GradientEvent } from '../src/functions/events.ts';
import { Peer } from '../src/peer/peer.ts';
import type { PeerData, RoundMetrics } from '../src/peer/types.ts';
import type { FunctionPlatform, PlatformMetrics } from '../src/platform/platform.ts';
import { closeRedis, connectRedis, type Redis } from '../src/tensor/redis-client.ts';
import { pushChunks } from '../src/tensor/transfer.ts';
import { makeGradients } from './gradients.ts';

export interface RoundPeerData {
  id: string;
  url: string;
  index: number;
  peers: number;
  length: number;
  writers: number;
  exchange: Exchange;
  transfer: 'direct' | 'relay';
  rounds: number;
  /** The founder's URL for the others; undefined for the founder. */
  bootstrapUrl?: string;
}

/** Stands in for the gradient functions: pushes a pre-made gradient in chunks (PL.PUSH), as a function does. */
class PushPlatform implements FunctionPlatform {
  readonly kind = 'local' as const;
  private readonly clients = new Map<string, Promise<Redis>>();

  constructor(private readonly gradients: Float32Array[]) {}

  private client(url: string, slot: number): Promise<Redis> {
    const key = `${url}#${slot}`;
    let c = this.clients.get(key);
    if (!c) { c = connectRedis({ url }); this.clients.set(key, c); }
    return c;
  }

  async invoke<N extends FunctionName>(name: N, event: FunctionEvents[N]): Promise<FunctionResults[N]> {
    if (name !== 'gradient') throw new Error(`bench round: no ${name} function`);
    const e = event as GradientEvent;
    const b = Number(e.contributionId.slice(1));
    const slot = b % this.gradients.length;
    const t = performance.now();
    const c = await this.client(e.redis.url, slot);
    const { count, done } = await pushChunks(c, e, this.gradients[slot], `${e.round}.${b}`);
    const pushMs = performance.now() - t;
    return { loss: 0, accuracy: 0, samples: 1, count, done, timings: { loadMs: 0, computeMs: 0, pushMs } } as FunctionResults[N];
  }

  metrics(): PlatformMetrics {
    return { invocations: 0, failures: 0, retries: 0, coldStarts: 0, warmStarts: 0, billedMs: 0, estimatedCostUsd: 0 };
  }

  async close(): Promise<void> {
    await Promise.all([...this.clients.values()].map((c) => c.then(closeRedis, () => {})));
  }
}

async function main(d: RoundPeerData): Promise<void> {
  const config = parseTrainingConfig({
    model: { name: 'resnet18' }, dataset: 'synthetic', batchesPerRound: d.writers, maxRounds: d.rounds, epochs: 1000,
    checkEvery: 100_000, validationSize: 0, exchange: d.exchange, transfer: d.transfer, seed: 1, deadlineMs: 600_000,
    optimizer: { kind: 'sgd', lr: 0.01, momentum: 0.9 },
  });
  const platform = new PushPlatform(makeGradients(d.length, d.writers));
  const model = { layoutHash: `bench-${d.length}`, length: d.length, trainable: d.length, ref: { name: 'cnn' } };
  const data: PeerData = { samples: MNIST_SPEC, batches: d.writers, batchKeys: () => ({ images: '-', labels: '-' }), validation: { imagesKey: '-', labelsKey: '-', count: 0 } };
  const peer = new Peer({
    id: d.id, redis: { url: d.url }, platform, model, data, shard: { index: d.index, count: d.peers },
    ...(d.bootstrapUrl === undefined
      ? { found: { config, initialParams: new Float32Array(d.length).fill(0.01), roundsPerEpoch: 1 } }
      : { bootstrap: { url: d.bootstrapUrl, fromRound: 0 } }),
  });
  peer.on('round', (m: RoundMetrics) => parentPort!.postMessage({ round: m }));
  try {
    await peer.start();
    parentPort!.postMessage('started');
    await new Promise<void>((resolve) => parentPort!.once('message', () => resolve()));
    await peer.run();
  } finally {
    await peer.close();
    await platform.close();
  }
  parentPort!.postMessage('finished');
}

if (parentPort && workerData) {
  main(workerData as RoundPeerData).catch((err: Error) => parentPort!.postMessage({ error: err.message }));
}
