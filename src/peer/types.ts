import type { SampleSpec } from '../data/spec.ts';
import type { ModelRef } from '../functions/events.ts';
import type { RedisLocation } from '../tensor/redis-client.ts';
import type { FunctionPlatform } from '../platform/platform.ts';
import type { TrainingConfig } from '../config/training.ts';
import type { Phase } from './round-machine.ts';
import type { Redis } from '../tensor/redis-client.ts';

/** Where a peer's shard and held-out data sit in its own Redis. */
export interface PeerData {
  /** What a stored sample is (the functions decode it by this). */
  samples: SampleSpec;
  /** Batches in this peer's shard. */
  batches: number;
  batchKeys(index: number): { images: string; labels: string };
  /** Held-out samples for the convergence check. */
  validation: { imagesKey: string; labelsKey: string; count: number };
}

/** The model as the network knows it: a flat float32 vector with a fixed layout. */
export interface ModelInfo {
  layoutHash: string;
  /** Elements of the flat parameter vector. */
  length: number;
  /**
   * Elements the optimizer updates: [0, trainable). The rest (batch-norm statistics) is
   * replaced by the aggregated value each round instead of being stepped.
   */
  trainable: number;
  /** How functions find the model: a zoo preset and width, or a custom topology's key. */
  ref: ModelRef;
}

export interface PeerOptions {
  id: string;
  /** The peer's own Redis, as the peer itself connects to it. */
  redis: RedisLocation;
  /** The address other peers and functions use for this peer's Redis (default: redis.url). */
  advertiseUrl?: string;
  /**
   * The network secret: this peer enters the others' Redis as the peers' user derived from it,
   * and creates the users on its own (src/peer/net/access.ts). Default: `redis.password`.
   */
  networkPassword?: string;
  platform: FunctionPlatform;
  model: ModelInfo;
  data: PeerData;
  shard: { index: number; count: number };
  /** Founding peer: the configuration and the initial parameters of the network. */
  found?: { config: TrainingConfig; initialParams: Float32Array; roundsPerEpoch: number };
  /** Joining peer: the Redis address of any live peer, and optionally the first round. */
  bootstrap?: { url: string; fromRound?: number };
  /**
   * Stores this peer's data again in its Redis (shard batches, held-out set): called when the
   * Redis came back empty, before the peer rejoins by state copy. Without it such a peer stops.
   */
  restoreData?: (client: Redis) => Promise<void>;
  /** Runs before each phase of each round (the fault tests pause a peer there to kill it). */
  beforePhase?: (phase: Phase, round: number) => Promise<void>;
}

export interface PhaseTimes {
  computeMs: number;
  averageMs: number;
  exchangeMs: number;
  aggregateMs: number;
  updateMs: number;
  verifyMs: number;
  checkMs: number;
}

export interface RoundMetrics extends PhaseTimes {
  peer: string;
  round: number;
  epoch: number;
  members: string[];
  loss: number;
  accuracy: number;
  samples: number;
  lr: number;
  /** Time the functions spent computing (sum over invocations), and the wall time of the round. */
  functionComputeMs: number;
  functionWallMs: number;
  roundMs: number;
  /** When this peer's average was ready, and when its parameters were updated (epoch ms). */
  averagedAt: number;
  updatedAt: number;
  bytesSent: number;
  bytesReceived: number;
  /** Of exchange, aggregate and verify: time spent waiting for the other peers. */
  waitMs: number;
  dropped: string[];
  /** The compute backend the round's gradient functions used (as they reported it). */
  backend?: string;
  /** A regression's training mean absolute error (its `accuracy` is NaN). */
  mae?: number;
  /** A regression's validation mean absolute error, at a check (`validationLoss` is its MSE). */
  validationMae?: number;
  /** Gradient invocations of the round that answered, and how many built the model first. */
  invocations?: number;
  modelBuilds?: number;
  /** Gradient calls given more than one copy, being slow to answer or failing fast (elastic platforms). */
  hedges?: number;
  /** Failed gradient calls whose gradient had counted: their result was read from the database, not computed again. */
  landed?: number;
  /** Batches whose gradient failed until the function deadline (the round averaged the rest). */
  failedBatches: number;
  repaired: boolean;
  checksum: string;
  validationAccuracy?: number;
  validationLoss?: number;
  costUsd: number;
}

export interface PeerStatus {
  id: string;
  round: number;
  phase: Phase | 'done' | 'left' | 'failed' | 'deciding' | 'starting';
  inFlight: number;
  loss: number | null;
  validationAccuracy: number | null;
  stopReason: string | null;
  error: string | null;
  updatedAt: number;
}

export interface PeerOutcome {
  id: string;
  state: 'done' | 'left' | 'failed';
  rounds: number;
  stopReason: string | null;
  error: string | null;
  checksum: string | null;
  /** When the peer ended (ms since the epoch), where its runner records it: the first failure is the likeliest cause. */
  endedAt?: number;
}
