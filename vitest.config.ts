import { defineConfig } from 'vitest/config';

// Tests start real redis-servers and worker threads: give them time, and run files in
// separate forks so one file's servers never see another's.
export default defineConfig({
  test: {
    include: ['src/**/*.spec.ts', 'test/**/*.spec.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    maxWorkers: 2,
  },
});
