import { BilledTally } from './tally.ts';
import type { FunctionEvents, FunctionName, FunctionResults, ModelRef } from '../functions/events.ts';
import type { SampleSpec } from '../data/spec.ts';

/** What one invocation cost, as a serverless platform would bill it. */
export interface InvocationRecord {
  name: FunctionName;
  durationMs: number;
  /** Memory billed for the invocation, MB. */
  memoryMb: number;
  coldStart: boolean;
  ok: boolean;
  attempts: number;
}

export interface PlatformMetrics {
  invocations: number;
  failures: number;
  retries: number;
  coldStarts: number;
  warmStarts: number;
  billedMs: number;
  /** GB-seconds x price + requests x price, with the platform's price list. */
  estimatedCostUsd: number;
}

/** A model to build ahead, for samples of this kind (its input and output depend on them; default MNIST's), as the gradient events name them. */
export interface WarmModel {
  model: ModelRef;
  samples?: SampleSpec;
}

/** A place where serverless functions run: the local worker pool, AWS Lambda, an HTTP gateway. */
export interface FunctionPlatform {
  readonly kind: 'local' | 'aws-lambda' | 'http';
  /**
   * Every call gets an instance of its own at once (Lambda): a slow call may then be given a
   * second copy (src/platform/hedge.ts). Absent or false for a platform whose calls queue.
   */
  readonly elastic?: boolean;
  /** The compute backend the functions loaded, where the platform knows it (local, after warm-up). */
  readonly computeBackend?: string;
  /**
   * Runs one function. `signal`: the caller stops waiting (its deadline passed, or a hedged
   * copy answered first). The local platform ends the call's instance, so a hung call does not
   * hold it for the next; HTTP and Lambda cut the request, while the function may run on to
   * its end there, where a late result is refused (or counted once, if it lands first).
   */
  invoke<N extends FunctionName>(name: N, event: FunctionEvents[N], opts?: { signal?: AbortSignal }): Promise<FunctionResults[N]>;
  /**
   * Builds these models in every instance before the first round, like provisioned concurrency
   * (the local platform). A platform that cannot leave it out: there a new instance builds the
   * model in its first call.
   */
  warm?(models: WarmModel[]): Promise<void>;
  metrics(): PlatformMetrics;
  close(): Promise<void>;
}

/** AWS Lambda's public x86 list price (us-east-1); configurable wherever a cost is estimated. */
export interface LambdaPrices {
  usdPerGbSecond: number;
  usdPerRequest: number;
}
export const DEFAULT_LAMBDA_PRICES: LambdaPrices = {
  usdPerGbSecond: 0.0000166667,
  usdPerRequest: 0.2 / 1_000_000,
};

export function lambdaCost(records: { durationMs: number; memoryMb: number }[], prices: LambdaPrices = DEFAULT_LAMBDA_PRICES): number {
  const tally = new BilledTally();
  for (const r of records) tally.add(r.durationMs, r.memoryMb);
  return tally.costUsd(prices);
}
