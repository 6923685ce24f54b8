import { describe, expect, it } from 'vitest';
import { nativeAddon } from '../model/native-backend.ts';
import { backendLabel } from './runtime.ts';

const addon = nativeAddon();

describe('the backend a gradient reports', () => {
  it('is the backend\'s name for wasm and cpu', () => {
    expect(backendLabel('wasm')).toBe('wasm');
    expect(backendLabel('cpu')).toBe('cpu');
  });

  // A filter gradient's sums are split among oneDNN's threads: their count is part of the arithmetic.
  it.skipIf(addon instanceof Error)('names native\'s thread count when it is more than one', () => {
    const a = addon as Exclude<typeof addon, Error>;
    expect(backendLabel('native')).toBe('native'); // one thread, the default inside a function
    a.setThreads(2);
    try {
      expect(backendLabel('native')).toBe('native (2 threads)');
    } finally {
      a.setThreads(1);
    }
    expect(backendLabel('native')).toBe('native');
  });
});
