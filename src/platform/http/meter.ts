import type { FunctionName } from '../../functions/events.ts';
import {
  DEFAULT_LAMBDA_PRICES, lambdaCost,
  type InvocationRecord, type LambdaPrices, type PlatformMetrics,
} from '../platform.ts';
import { RetriesExhausted } from '../retry.ts';

/** What a remote call reports back besides its value. */
export interface Metered<T> {
  value: T;
  attempts: number;
  /** Only when the function said so; unknown counts as warm. */
  coldStart: boolean;
  /** Memory the function reported it had, if it did. */
  memoryMb?: number;
}

/**
 * Keeps one InvocationRecord per call and sums them into PlatformMetrics. Durations are
 * measured client side, so they include the network and queueing: what a peer waits for.
 * Cost uses the Lambda price list as an estimate for every remote platform.
 */
export class Meter {
  readonly records: InvocationRecord[] = [];

  constructor(private readonly prices: LambdaPrices = DEFAULT_LAMBDA_PRICES) {}

  /** Times `call` and records it, ok or not; a failure is rethrown as it came. */
  async measure<T>(name: FunctionName, memoryMb: number, call: () => Promise<Metered<T>>): Promise<T> {
    const t0 = performance.now();
    try {
      const out = await call();
      this.records.push({
        name, durationMs: performance.now() - t0, memoryMb: out.memoryMb ?? memoryMb,
        coldStart: out.coldStart, ok: true, attempts: out.attempts,
      });
      return out.value;
    } catch (err) {
      const attempts = err instanceof RetriesExhausted ? err.attempts : 1;
      this.records.push({ name, durationMs: performance.now() - t0, memoryMb, coldStart: false, ok: false, attempts });
      throw err;
    }
  }

  metrics(): PlatformMetrics {
    let failures = 0, retries = 0, coldStarts = 0, billedMs = 0;
    for (const r of this.records) {
      if (!r.ok) failures++;
      else if (r.coldStart) coldStarts++;
      retries += Math.max(0, r.attempts - 1);
      billedMs += Math.ceil(r.durationMs);
    }
    const n = this.records.length;
    return {
      invocations: n,
      failures,
      retries,
      coldStarts,
      warmStarts: n - failures - coldStarts,
      billedMs,
      estimatedCostUsd: lambdaCost(this.records, this.prices),
    };
  }
}
