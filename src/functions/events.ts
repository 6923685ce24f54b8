import type { SampleSpec } from '../data/spec.ts';

/**
 * Where a function finds a peer's Redis: its address only. Secrets do not travel in events:
 * a function takes the Redis password from its own environment (PEERLESS_REDIS_PASSWORD),
 * set by the platform (the local pool, `function serve`'s shell, the Lambda configuration).
 */
export interface FunctionRedis {
  url: string;
}

/**
 * The events and results of the serverless functions. Functions are stateless: an event
 * names the peer's Redis and the keys to read and write; every platform (local worker pool,
 * AWS Lambda, HTTP) carries the same JSON.
 */

export interface ModelRef {
  /** A model of the zoo ('cnn', 'vgg11', 'resnet18', 'densenet121', 'mlp'), or `custom-<hash>`. */
  name: string;
  /** Width multiplier of a zoo model (channels scale by it); 1 = the standard model. */
  width?: number;
  /** A custom model: the key of the peer's Redis holding its topology (src/model/custom.ts). */
  topologyKey?: string;
}

export interface GradientEvent {
  redis: FunctionRedis;
  model: ModelRef;
  /** Layout hash the caller expects; the function checks it against `layoutKey`. */
  layoutHash: string;
  layoutKey: string;
  paramsKey: string;
  /** The batch's inputs and labels, stored as `samples` says (src/data/spec.ts). */
  batchImagesKey: string;
  batchLabelsKey: string;
  /** Where the gradient is accumulated (PL.PUSH sum avg id attempt expected ...). */
  sumKey: string;
  avgKey: string;
  contributionId: string;
  expected: number;
  /** The round the gradient belongs to: the module refuses it once the sum moved on. */
  round?: number;
  /** The compute backend the network's plan fixes; a function that cannot use it fails. */
  backend?: string;
  /** Elements per pushed chunk (default: the transfer path's, 256 Ki). */
  chunkElements?: number;
  /** Micro-batch size inside the function (memory bound for big models); default: whole batch. */
  microBatch?: number;
  /** Gradient checkpointing (src/model/checkpoint.ts); default: the model's (on for densenet121). */
  checkpoint?: boolean;
  /** What a sample is (input shape and storage, classes); default MNIST's. */
  samples?: SampleSpec;
}

export interface TimeBreakdown {
  loadMs: number;
  computeMs: number;
  pushMs: number;
}

export interface GradientResult {
  loss: number;
  /** Of a classifier; NaN (null over JSON) for a regression. */
  accuracy: number;
  /** Of a regression: the batch's mean absolute error. */
  mae?: number;
  samples: number;
  /** The compute backend that computed it. */
  backend?: string;
  /** This invocation built the model (a cold instance, or a model new to it). */
  modelBuilt?: boolean;
  /** Accumulation state after this push. */
  count: number;
  done: boolean;
  timings: TimeBreakdown;
}

export interface EvaluateEvent {
  redis: FunctionRedis;
  model: ModelRef;
  layoutHash: string;
  layoutKey: string;
  paramsKey: string;
  imagesKey: string;
  labelsKey: string;
  /** Sample range [start, start+count) within the stored held-out set. */
  start: number;
  count: number;
  /** What a sample is; default MNIST's. */
  samples?: SampleSpec;
}

export interface EvaluateResult {
  loss: number;
  correct: number;
  /** Regression: the sum over samples of the mean absolute error. */
  absError?: number;
  samples: number;
  timings: { loadMs: number; computeMs: number };
}

export type FunctionName = 'gradient' | 'evaluate';
export interface FunctionEvents { gradient: GradientEvent; evaluate: EvaluateEvent }
export interface FunctionResults { gradient: GradientResult; evaluate: EvaluateResult }
