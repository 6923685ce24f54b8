import { availableParallelism } from 'node:os';
import { parseTrainingConfig, type TrainingConfigInput } from '../src/config/training.ts';
import { runLocalCluster } from '../src/cluster/local-cluster.ts';
import type { RoundMetrics } from '../src/peer/types.ts';
import type { FunctionPlatform } from '../src/platform/platform.ts';

export interface ScalingOptions {
  model: string;
  width: number;
  batchSizes: number[];
  peerCounts: number[];
  /** Training samples shared by the peers (the paper: all 60k). */
  samples: number;
  rounds: number;
  platform: () => Promise<FunctionPlatform>;
  onProgress?: (done: number, total: number, what: string) => void;
}

export interface ScalingGrid {
  batchSizes: number[];
  peerCounts: number[];
  samples: number;
  rounds: number;
}

/**
 * The grid a run uses unless told otherwise: the paper's (batch 64 to 1024, 4 to 12 peers)
 * where it finishes in minutes on a 2-core machine. The big models compute 10-100x longer per
 * image, so they take fewer images and rounds; densenet121 (Figure 2's model) stops at batch
 * 128, the largest whose gradient fits wasm's 4 GiB heap even checkpointed.
 */
export function scalingDefaults(model: string, quick: boolean): ScalingGrid {
  if (quick) return model === 'densenet121' || model === 'resnet18'
    ? { batchSizes: [64], peerCounts: [4, 12], samples: 768, rounds: 1 }
    : { batchSizes: [256, 1024], peerCounts: [4, 12], samples: 2400, rounds: 1 };
  switch (model) {
    case 'densenet121': return { batchSizes: [64, 128], peerCounts: [4, 8, 12], samples: 1536, rounds: 1 };
    case 'resnet18': return { batchSizes: [64, 128, 512], peerCounts: [4, 8, 12], samples: 1536, rounds: 1 };
    case 'vgg11': return { batchSizes: [64, 128, 512, 1024], peerCounts: [4, 8, 12], samples: 3072, rounds: 1 };
    default: return { batchSizes: [64, 128, 512, 1024], peerCounts: [4, 8, 12], samples: 12_000, rounds: 2 };
  }
}

export interface ScalingRow {
  peers: number;
  batchSize: number;
  batchesPerPeer: number;
  /** Mean over peers and rounds, ms: the functions' phase, and everything after it. */
  computeMs: number;
  /** Averaging, exchange, aggregation, update and checksum comparison, without the waiting. */
  aggregationMs: number;
  /** Waiting for the other peers (their functions share this machine's cores). */
  waitMs: number;
  roundMs: number;
}

export interface BytesRow {
  peers: number;
  exchange: 'all' | 'sharded';
  /** Mean bytes a peer receives in one round's exchange. */
  bytesPerPeerPerRound: number;
  /** The same, as a multiple of the parameter vector's size. */
  vectors: number;
}

export interface ScalingReport {
  benchmark: 'scaling';
  model: string;
  parameters: number;
  /** Training images shared by the peers, and measured rounds per configuration. */
  samples: number;
  rounds: number;
  cores: number;
  note: string;
  rows: ScalingRow[];
  bytes: BytesRow[];
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

async function cluster(o: ScalingOptions, peers: number, batchSize: number, exchange: 'all' | 'sharded', rounds: number, batchesPerRound = 0) {
  const input: TrainingConfigInput = {
    model: { name: o.model as 'cnn', width: o.width },
    dataset: 'mnist', trainSamples: o.samples, batchSize, batchesPerRound, maxRounds: rounds, epochs: 1000,
    checkEvery: 100_000, validationSize: 0, exchange, seed: 1,
    // Every peer's functions queue for this machine's cores: a round of a big model takes
    // minutes here, where each function would have its own core on a serverless platform.
    // The deadlines must not drop a peer for waiting its turn.
    deadlineMs: 3_600_000, functionDeadlineMs: 3_600_000,
    optimizer: { kind: 'sgd', lr: 0.01, momentum: 0.9 },
  };
  const platform = await o.platform();
  const metrics: RoundMetrics[] = [];
  try {
    const summary = await runLocalCluster({ peers, config: parseTrainingConfig(input), platform, onRound: (m) => metrics.push(m) });
    return { metrics, parameters: summary.parameters };
  } finally {
    await platform.close();
  }
}

/**
 * The paper's Figure 2 on one machine: for each peer count and batch size, a cluster runs a
 * few rounds in the paper's mode (each peer's whole shard in one round) and the round time
 * is split into the gradient functions' phase and the aggregation that follows (averaging,
 * exchange, aggregation, update, verification). Then, per peer count, the bytes each peer
 * receives per round with exchange "all" and "sharded".
 */
export async function runScalingBench(o: ScalingOptions): Promise<ScalingReport> {
  const rows: ScalingRow[] = [];
  const bytes: BytesRow[] = [];
  let parameters = 0;
  const total = o.peerCounts.length * (o.batchSizes.length + 2);
  let done = 0;
  let lastRows: RoundMetrics[] = [];
  for (const peers of o.peerCounts) {
    for (const batchSize of o.batchSizes) {
      o.onProgress?.(done, total, `${peers} peers, batch ${batchSize}`);
      const r = await cluster(o, peers, batchSize, 'all', o.rounds);
      parameters = r.parameters;
      lastRows = r.metrics;
      rows.push({
        peers, batchSize,
        batchesPerPeer: Math.ceil(o.samples / peers / batchSize),
        computeMs: mean(r.metrics.map((m) => m.computeMs)),
        aggregationMs: mean(r.metrics.map((m) => m.averageMs + m.exchangeMs + m.aggregateMs + m.updateMs + m.verifyMs - m.waitMs)),
        waitMs: mean(r.metrics.map((m) => m.waitMs)),
        roundMs: mean(r.metrics.map((m) => m.roundMs)),
      });
      done++;
    }
    // Bytes per round do not depend on the batches: "all" is read off the rows above, and
    // "sharded" from one round of one batch per peer (the smallest batch: the least compute).
    const allBytes = mean(lastRows.flatMap((m) => m.bytesReceived));
    bytes.push({ peers, exchange: 'all', bytesPerPeerPerRound: allBytes, vectors: allBytes / (parameters * 4) });
    done++;
    o.onProgress?.(done, total, `${peers} peers, bytes with sharded`);
    const r = await cluster(o, peers, Math.min(...o.batchSizes), 'sharded', 1, 1);
    const perPeer = mean(r.metrics.map((m) => m.bytesReceived));
    bytes.push({ peers, exchange: 'sharded', bytesPerPeerPerRound: perPeer, vectors: perPeer / (r.parameters * 4) });
    done++;
  }
  o.onProgress?.(total, total, 'done');
  const cores = availableParallelism();
  return {
    benchmark: 'scaling', model: o.model, parameters, samples: o.samples, rounds: o.rounds, cores,
    note: `all peers, their Redis servers and the function pool share this machine's ${cores} cores: compute time grows with the peer count here, where on a serverless platform each function has its own core`,
    rows, bytes,
  };
}
