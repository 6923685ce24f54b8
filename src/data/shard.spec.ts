import { describe, expect, it } from 'vitest';
import { mulberry32, permutation } from './random.ts';
import { batchRanges, splitData } from './shard.ts';

describe('seeded PRNG and permutation', () => {
  it('mulberry32 is deterministic and in [0, 1)', () => {
    const a = mulberry32(42), b = mulberry32(42), c = mulberry32(43);
    const xs = Array.from({ length: 1000 }, () => a());
    expect(xs).toEqual(Array.from({ length: 1000 }, () => b()));
    expect(xs.slice(0, 5)).not.toEqual(Array.from({ length: 5 }, () => c()));
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...xs)).toBeLessThan(1);
  });

  it('permutation is a permutation, the same for the same seed', () => {
    const p = permutation(1000, 7);
    expect(Array.from(p).sort((x, y) => x - y)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(permutation(1000, 7)).toEqual(p);
    expect(permutation(1000, 8)).not.toEqual(p);
  });
});

describe('splitData', () => {
  it('same seed, same split; another seed, another', () => {
    const o = { seed: 3, peers: 4, validation: 100 };
    expect(splitData(1000, o)).toEqual(splitData(1000, o));
    expect(splitData(1000, { ...o, seed: 4 }).shards[0]).not.toEqual(splitData(1000, o).shards[0]);
  });

  it('shards and validation are disjoint and cover the samples; sizes differ by at most one', () => {
    for (const [count, peers, validation] of [[1000, 3, 100], [60_000, 7, 5000], [11, 11, 0], [10, 3, 1]] as const) {
      const s = splitData(count, { seed: 1, peers, validation });
      const all = [...s.validation, ...s.shards.flatMap((x) => Array.from(x))];
      expect(all.length).toBe(count);
      expect(new Set(all).size).toBe(count);
      const sizes = s.shards.map((x) => x.length);
      expect(s.shards.length).toBe(peers);
      expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
      expect(s.validation.length).toBe(validation);
    }
  });

  it('trainSamples limits the training part; the held-out part does not move', () => {
    const full = splitData(1000, { seed: 9, peers: 2, validation: 50 });
    const part = splitData(1000, { seed: 9, peers: 2, validation: 50, trainSamples: 100 });
    expect(part.validation).toEqual(full.validation);
    expect(part.shards.map((s) => s.length)).toEqual([50, 50]);
  });

  it('refuses impossible splits with one clear line', () => {
    expect(() => splitData(10, { seed: 1, peers: 0, validation: 0 })).toThrow('peers must be a positive integer, got 0');
    expect(() => splitData(10, { seed: 1, peers: 2, validation: 10 })).toThrow('validation size 10 must be below the 10 samples');
    expect(() => splitData(10, { seed: 1, peers: 20, validation: 0 })).toThrow('10 training samples cannot be shared by 20 peers');
  });
});

describe('batchRanges', () => {
  it('consecutive batches of B; the last holds the remainder (no sample dropped)', () => {
    expect(batchRanges(10, 4)).toEqual([{ start: 0, count: 4 }, { start: 4, count: 4 }, { start: 8, count: 2 }]);
    expect(batchRanges(8, 4)).toEqual([{ start: 0, count: 4 }, { start: 4, count: 4 }]);
    expect(batchRanges(3, 64)).toEqual([{ start: 0, count: 3 }]);
    expect(batchRanges(0, 64)).toEqual([]);
    const rs = batchRanges(60_000 / 7 | 0, 64);
    expect(rs.reduce((s, r) => s + r.count, 0)).toBe(60_000 / 7 | 0);
    expect(() => batchRanges(10, 0)).toThrow('batch size must be a positive integer, got 0');
  });
});
