import { defineConfig } from 'vitest/config';
import base from './vitest.config.ts';

// `npm run faults`: every fault test, the long phase-kill matrix included (the default suite
// leaves that one out: about two minutes of peer processes killed and restarted).
export default defineConfig({
  test: { ...base.test, include: ['test/faults/**/*.spec.ts'], exclude: ['**/node_modules/**'] },
});
