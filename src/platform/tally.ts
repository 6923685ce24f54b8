import type { InvocationRecord, LambdaPrices } from './platform.ts';

/** How many of the latest invocation records a platform keeps for benchmarks' break-downs. */
export const RECENT_RECORDS = 1024;

/**
 * Running sums of billed calls, so a platform's metrics cost the same at round 10 and at
 * round 100,000: a list of every call grew by one record per invocation for the whole run
 * (a leak in a long run) and was summed again at every metrics() call.
 */
export class BilledTally {
  calls = 0;
  billedMs = 0;
  private gbSeconds = 0;

  add(durationMs: number, memoryMb: number): void {
    const ms = Math.ceil(durationMs);
    this.calls++;
    this.billedMs += ms;
    this.gbSeconds += (ms / 1000) * (memoryMb / 1024);
  }

  /** Lambda's price of the calls so far: GB-seconds plus one request per call. */
  costUsd(prices: LambdaPrices): number {
    return this.gbSeconds * prices.usdPerGbSecond + this.calls * prices.usdPerRequest;
  }
}

/** The latest invocation records, at most RECENT_RECORDS of them (oldest first). */
export class RecentRecords {
  private readonly ring: InvocationRecord[] = [];
  private next = 0;

  push(r: InvocationRecord): void {
    if (this.ring.length < RECENT_RECORDS) this.ring.push(r);
    else this.ring[this.next] = r;
    this.next = (this.next + 1) % RECENT_RECORDS;
  }

  list(): InvocationRecord[] {
    return this.ring.length < RECENT_RECORDS ? [...this.ring] : [...this.ring.slice(this.next), ...this.ring.slice(0, this.next)];
  }
}
