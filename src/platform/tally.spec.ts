import { describe, expect, it } from 'vitest';
import { DEFAULT_LAMBDA_PRICES, lambdaCost, type InvocationRecord } from './platform.ts';
import { BilledTally, RECENT_RECORDS, RecentRecords } from './tally.ts';

const record = (i: number): InvocationRecord => ({ name: 'gradient', durationMs: i + 0.4, memoryMb: 1024 + i, coldStart: false, ok: true, attempts: 1 });

describe('platform tallies', () => {
  it('the running cost equals the price of every call listed', () => {
    const tally = new BilledTally();
    const all = Array.from({ length: 3000 }, (_, i) => record(i));
    for (const r of all) tally.add(r.durationMs, r.memoryMb);
    expect(tally.calls).toBe(3000);
    expect(tally.billedMs).toBe(all.reduce((s, r) => s + Math.ceil(r.durationMs), 0));
    // Lambda's price by hand: whole ms x GB, plus a request fee per call.
    const gbSeconds = all.reduce((n, r) => n + (Math.ceil(r.durationMs) / 1000) * (r.memoryMb / 1024), 0);
    const expected = gbSeconds * DEFAULT_LAMBDA_PRICES.usdPerGbSecond + all.length * DEFAULT_LAMBDA_PRICES.usdPerRequest;
    expect(tally.costUsd(DEFAULT_LAMBDA_PRICES)).toBeCloseTo(expected, 12);
    expect(lambdaCost(all)).toBeCloseTo(expected, 12);
  });

  it('keeps the latest RECENT_RECORDS records, oldest first, however many came', () => {
    const recent = new RecentRecords();
    for (let i = 0; i < 5; i++) recent.push(record(i));
    expect(recent.list().map((r) => r.memoryMb)).toEqual([1024, 1025, 1026, 1027, 1028]);
    for (let i = 5; i < RECENT_RECORDS * 3 + 7; i++) recent.push(record(i));
    const kept = recent.list();
    expect(kept).toHaveLength(RECENT_RECORDS);
    expect(kept[0].memoryMb).toBe(1024 + RECENT_RECORDS * 2 + 7);
    expect(kept.at(-1)!.memoryMb).toBe(1024 + RECENT_RECORDS * 3 + 6);
  });
});
