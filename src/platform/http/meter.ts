import type { FunctionName } from '../../functions/events.ts';
import {
  DEFAULT_LAMBDA_PRICES,
  type InvocationRecord, type LambdaPrices, type PlatformMetrics,
} from '../platform.ts';
import { RetriesExhausted } from '../retry.ts';
import { BilledTally, RecentRecords } from '../tally.ts';

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
 * Sums every call into PlatformMetrics as it ends, and keeps the latest records. Durations
 * are measured client side, so they include the network and queueing: what a peer waits
 * for. Cost uses the Lambda price list as an estimate for every remote platform.
 */
export class Meter {
  private readonly billed = new BilledTally();
  private readonly recent = new RecentRecords();
  private failures = 0;
  private retries = 0;
  private coldStarts = 0;

  constructor(private readonly prices: LambdaPrices = DEFAULT_LAMBDA_PRICES) {}

  /** Times `call` and records it, ok or not; a failure is rethrown as it came. */
  async measure<T>(name: FunctionName, memoryMb: number, call: () => Promise<Metered<T>>): Promise<T> {
    const t0 = performance.now();
    try {
      const out = await call();
      this.record({
        name, durationMs: performance.now() - t0, memoryMb: out.memoryMb ?? memoryMb,
        coldStart: out.coldStart, ok: true, attempts: out.attempts,
      });
      return out.value;
    } catch (err) {
      const attempts = err instanceof RetriesExhausted ? err.attempts : 1;
      this.record({ name, durationMs: performance.now() - t0, memoryMb, coldStart: false, ok: false, attempts });
      throw err;
    }
  }

  private record(r: InvocationRecord): void {
    this.recent.push(r);
    this.billed.add(r.durationMs, r.memoryMb);
    if (!r.ok) this.failures++;
    else if (r.coldStart) this.coldStarts++;
    this.retries += Math.max(0, r.attempts - 1);
  }

  /** The latest calls (at most RECENT_RECORDS), oldest first. */
  records(): InvocationRecord[] {
    return this.recent.list();
  }

  metrics(): PlatformMetrics {
    const n = this.billed.calls;
    return {
      invocations: n,
      failures: this.failures,
      retries: this.retries,
      coldStarts: this.coldStarts,
      warmStarts: n - this.failures - this.coldStarts,
      billedMs: this.billed.billedMs,
      estimatedCostUsd: this.billed.costUsd(this.prices),
    };
  }
}
