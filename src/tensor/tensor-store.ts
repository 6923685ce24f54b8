/**
 * One typed interface over the tensor operations a peer needs, with two implementations:
 * `InDbTensorStore` (the module's commands: the work happens inside Redis) and
 * `OutsideDbTensorStore` (fetch into Node, compute, store back: the original work's
 * baseline). Both give the same results; the benchmarks compare them side by side.
 * Lengths and offsets are in float32 elements.
 */
export interface AccumulateResult {
  /** Distinct contributions summed so far. */
  count: number;
  expected: number;
  /** True once `count === expected` and the average has been written. */
  done: boolean;
}

export interface SgdOptions {
  lr: number;
  momentum: number;
  dampening?: number;
  weightDecay?: number;
  nesterov?: boolean;
}

export interface AdamOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** AdamW: decoupled weight decay. */
  decoupled?: boolean;
}

export type AggregationRule =
  | { rule: 'mean' }
  | { rule: 'median' }
  | { rule: 'trimmed'; trim: number }
  | { rule: 'krum'; byzantine: number; select: number };

export interface TensorStore {
  set(key: string, values: Float32Array): Promise<void>;
  get(key: string): Promise<Float32Array>;
  getRange(key: string, offset: number, count: number): Promise<Float32Array>;
  setRange(key: string, offset: number, values: Float32Array): Promise<void>;
  zeros(key: string, length: number): Promise<void>;
  length(key: string): Promise<number>;
  /**
   * Adds `values` into `sumKey` once per `id`; the last of `expected` writes `avgKey`. With
   * `round`, the keys are reused across rounds: a later round starts afresh, an earlier one
   * is refused, and `<avgKey>:round` names the round of a complete average.
   */
  accumulate(
    sumKey: string,
    avgKey: string,
    id: string,
    expected: number,
    values: Float32Array,
    slice?: { offset: number; total: number },
    round?: number,
  ): Promise<AccumulateResult>;
  sgd(paramKey: string, gradKey: string, velocityKey: string, opts: SgdOptions): Promise<void>;
  /** Returns the new step count. */
  adam(paramKey: string, gradKey: string, mKey: string, vKey: string, stepKey: string, opts: AdamOptions): Promise<number>;
  /**
   * Aggregates `keys` into `dst`, reduced in key-name order whatever the order given. With
   * `length` (the inputs'), a coordinate-wise rule may run in pieces: the same bytes.
   */
  aggregate(dst: string, keys: string[], rule: AggregationRule, length?: number): Promise<void>;
  scale(key: string, factor: number): Promise<void>;
  checksum(key: string): Promise<string>;
}

/** Channel on which the module announces a finished average (message: the key name). */
export const AVERAGED_CHANNEL = 'peerless:averaged';
