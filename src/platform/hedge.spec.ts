import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CallTimes, hedged, MAX_COPIES, MIN_HEDGE_MS } from './hedge.ts';

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

  it('hedges again each interval while every copy is held, up to MAX_COPIES', async () => {
    const c = calls();
    const out = hedged(c.start, 100);
    for (let n = 2; n <= MAX_COPIES; n++) {
      await vi.advanceTimersByTimeAsync(100);
      expect(c.started).toHaveLength(n);
    }
    await vi.advanceTimersByTimeAsync(1_000);
    expect(c.started).toHaveLength(MAX_COPIES);
    c.started[MAX_COPIES - 1]!.resolve('last');
    await expect(out).resolves.toMatchObject({ value: 'last', hedged: true });
    expect(c.started.map((p) => p.signal.aborted)).toEqual(c.started.map((_, i) => i < MAX_COPIES - 1));
  });

  it('replaces a copy that fails, when another call may pass, up to MAX_COPIES', async () => {
    // Alone: a gateway error is followed by a fresh copy at once, with no backoff.
    const alone = calls();
    const first = hedged(alone.start, 100, undefined, (err) => (err as Error).message === 'gateway 500');
    alone.started[0]!.reject(new Error('gateway 500'));
    await vi.advanceTimersByTimeAsync(0);
    expect(alone.started).toHaveLength(2);
    alone.started[1]!.resolve('second');
    await expect(first).resolves.toMatchObject({ value: 'second', hedged: true });

    // While the first call is held, every copy after it fails fast: each is replaced at once,
    // until MAX_COPIES; then the first is left to answer.
    const c = calls();
    const out = hedged(c.start, 100, undefined, (err) => (err as Error).message === 'gateway 500');
    await vi.advanceTimersByTimeAsync(100);
    for (let i = 1; i < MAX_COPIES; i++) {
      c.started[i]!.reject(new Error('gateway 500'));
      await vi.advanceTimersByTimeAsync(0);
      expect(c.started).toHaveLength(Math.min(i + 2, MAX_COPIES));
    }
    await vi.advanceTimersByTimeAsync(1_000);
    expect(c.started).toHaveLength(MAX_COPIES);
    c.started[0]!.resolve('first');
    await expect(out).resolves.toMatchObject({ value: 'first', hedged: true });

    // A failure that will fail again (the function's own input) is not replaced, nor hedged again.
    const d = calls();
    const own = hedged(d.start, 100, undefined, (err) => (err as Error).message === 'gateway 500');
    await vi.advanceTimersByTimeAsync(100);
    d.started[1]!.reject(new Error('bad batch'));
    await vi.advanceTimersByTimeAsync(1_000);
    expect(d.started).toHaveLength(2);
    d.started[0]!.reject(new Error('bad batch'));
    await expect(own).rejects.toThrow('bad batch');
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
  it('hedges nothing before 3 calls, then at the 95th percentile of the latest 32, kept within 1.5 and 3 times their median', () => {
    const t = new CallTimes();
    for (let i = 0; i < 2; i++) t.add(100);
    expect(t.hedgeAfterMs()).toBe(0);
    t.add(100);
    // Equal calls: 1.5 times the median, not the jitter of a tail that is not there.
    expect(t.hedgeAfterMs()).toBe(150);
    // One slow call is the 95th percentile of 4, but waits at most 3 times the median.
    t.add(10_000);
    expect(t.hedgeAfterMs()).toBe(300);
    // A tail between: its 95th percentile (the 31st of 32).
    for (let i = 0; i < 32; i++) t.add(i < 30 ? 100 : 250);
    expect(t.hedgeAfterMs()).toBe(250);
    // 32 fast calls replace the old ones; never under MIN_HEDGE_MS.
    for (let i = 0; i < 32; i++) t.add(5);
    expect(t.hedgeAfterMs()).toBe(MIN_HEDGE_MS);
  });
});
