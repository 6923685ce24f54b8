import type { SampleSpec } from '../data/spec.ts';
import { DataKeys } from '../data/store.ts';
import type { FunctionRedis, GradientEvent, ModelRef } from '../functions/events.ts';
import { K } from './net/keys.ts';

/** Where a gradient goes: the sum and average keys, how many gradients make it whole. */
export interface GradientTarget {
  sumKey: string;
  avgKey: string;
  expected: number;
  round?: number;
}

/**
 * The one builder of a gradient function's event for a peer's Redis: the model and its
 * parameters where a peer keeps them, batch `batch` of the stored shard (or `batchKeys`), and
 * the sum it is pushed into. Peers, benchmarks and measurements all build events here.
 */
export function gradientEvent(
  peer: { redis: FunctionRedis; model: ModelRef; layoutHash: string; samples?: SampleSpec },
  batch: number,
  target: GradientTarget,
  o: { chunkElements?: number; microBatch?: number; checkpoint?: 'auto' | 'on' | 'off'; backend?: string; batchKeys?: { images: string; labels: string } } = {},
): GradientEvent {
  const keys = o.batchKeys ?? { images: DataKeys.batchImages(batch), labels: DataKeys.batchLabels(batch) };
  return {
    redis: peer.redis,
    model: peer.model,
    layoutHash: peer.layoutHash,
    layoutKey: K.layout,
    paramsKey: K.params,
    batchImagesKey: keys.images,
    batchLabelsKey: keys.labels,
    sumKey: target.sumKey,
    avgKey: target.avgKey,
    contributionId: `b${batch}`,
    ...(peer.samples ? { samples: peer.samples } : {}),
    expected: target.expected,
    ...(target.round !== undefined ? { round: target.round } : {}),
    ...(o.chunkElements ? { chunkElements: o.chunkElements } : {}),
    ...(o.backend && o.backend !== 'auto' ? { backend: o.backend } : {}),
    ...(o.microBatch ? { microBatch: o.microBatch } : {}),
    ...(o.checkpoint === 'on' || o.checkpoint === 'off' ? { checkpoint: o.checkpoint === 'on' } : {}),
  };
}
