import { describe, expect, it } from 'vitest';
import { decodeLandedResult, encodeLandedResult } from './landed-result.ts';

describe('a gradient result kept with its counted contribution', () => {
  it('reads back what the function computed; the push time and accumulation state are not kept', () => {
    const text = encodeLandedResult({ loss: 0.5, accuracy: 0.75, samples: 32, backend: 'wasm', modelBuilt: true, timings: { loadMs: 3, computeMs: 40, pushMs: 0 } });
    expect(decodeLandedResult(text)).toEqual({
      loss: 0.5, accuracy: 0.75, samples: 32, backend: 'wasm', modelBuilt: true, count: 0, done: false, timings: { loadMs: 3, computeMs: 40, pushMs: 0 },
    });
  });

  it('carries a regression\'s NaN accuracy and its mean absolute error', () => {
    const r = decodeLandedResult(encodeLandedResult({ loss: 2, accuracy: NaN, mae: 1.5, samples: 8, timings: { loadMs: 1, computeMs: 2, pushMs: 0 } }));
    expect(r?.accuracy).toBeNaN();
    expect(r?.mae).toBe(1.5);
  });

  it('is none for an id counted without a result, nothing, or what is not a result', () => {
    for (const text of [null, '1', 'not json', '{"loss":1}', '{"loss":"1","samples":2,"timings":{"loadMs":1,"computeMs":1}}']) {
      expect(decodeLandedResult(text)).toBeNull();
    }
  });
});
