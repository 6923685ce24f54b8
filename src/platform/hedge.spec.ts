import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CallTimes, hedged, MIN_HEDGE_MS } from './hedge.ts';

/** A call the test answers by hand, with the signal it was given. */
interface Pending { signal: AbortSignal; resolve(v: string): void; reject(e: Error): void }

function calls() {
  const started: Pending[] = [];
  const start = (signal: AbortSignal) => new Promise<string>((resolve, reject) => { started.push({ signal, resolve, reject }); });
  return { started, start };
}

// Fake timers: when the copy starts is the test's to decide, not the machine's.
beforeEach(() => { vi.useFakeTimers(); });
afterEach(() => { vi.useRealTimers(); });

describe('hedged', () => {
  it('starts a copy of a call not answered in time; the first answer wins and the other copy is told to stop', async () => {
    const c = calls();
    const out = hedged(c.start, 100);
    await vi.advanceTimersByTimeAsync(99);
    expect(c.started).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(c.started).toHaveLength(2);
    c.started[1]!.resolve('copy');
    await expect(out).resolves.toMatchObject({ value: 'copy', hedged: true });
    expect(c.started.map((p) => p.signal.aborted)).toEqual([true, false]);
  });

  it('starts no copy of a call that answers in time, nor with 0', async () => {
    for (const after of [100, 0]) {
      const c = calls();
      const out = hedged(c.start, after);
      c.started[0]!.resolve('first');
      await expect(out).resolves.toMatchObject({ value: 'first', hedged: false });
      await vi.advanceTimersByTimeAsync(1_000);
      expect(c.started).toHaveLength(1);
    }
  });

  it('leaves a call that fails before its hedge to the caller\'s retries', async () => {
    const c = calls();
    const out = hedged(c.start, 100);
    c.started[0]!.reject(new Error('gateway 500'));
    await expect(out).rejects.toThrow('gateway 500');
    await vi.advanceTimersByTimeAsync(1_000);
    expect(c.started).toHaveLength(1);
  });

  it('waits for the other copy when one fails, and gives the first failure when both do', async () => {
    const c = calls();
    const out = hedged(c.start, 100);
    await vi.advanceTimersByTimeAsync(100);
    c.started[1]!.reject(new Error('copy failed'));
    c.started[0]!.resolve('first');
    await expect(out).resolves.toMatchObject({ value: 'first', hedged: true });

    const d = calls();
    const both = hedged(d.start, 100);
    await vi.advanceTimersByTimeAsync(100);
    d.started[0]!.reject(new Error('first failed'));
    d.started[1]!.reject(new Error('copy failed'));
    await expect(both).rejects.toThrow('first failed');
  });

  it('stops every copy when the caller gives up', async () => {
    const c = calls();
    const stop = new AbortController();
    void hedged(c.start, 100, stop.signal).catch(() => {});
    await vi.advanceTimersByTimeAsync(100);
    stop.abort();
    expect(c.started.map((p) => p.signal.aborted)).toEqual([true, true]);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(c.started).toHaveLength(2);
  });
});

describe('CallTimes', () => {
  it('hedges nothing before 8 calls, then after 3 times the median of the latest 32, at least MIN_HEDGE_MS', () => {
    const t = new CallTimes();
    for (let i = 0; i < 7; i++) t.add(100);
    expect(t.hedgeAfterMs()).toBe(0);
    t.add(100);
    expect(t.hedgeAfterMs()).toBe(300);
    // One slow call does not move the median; 32 fast ones replace the old ones.
    t.add(10_000);
    expect(t.hedgeAfterMs()).toBe(300);
    for (let i = 0; i < 32; i++) t.add(5);
    expect(t.hedgeAfterMs()).toBe(MIN_HEDGE_MS);
  });
});
