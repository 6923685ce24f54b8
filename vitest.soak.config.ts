import { defineConfig } from 'vitest/config';

// Long runs kept out of the default suite: `npm run test:soak`.
export default defineConfig({
  test: {
    include: ['test/soak/**/*.spec.ts'],
    testTimeout: 3_600_000,
    hookTimeout: 120_000,
    pool: 'forks',
    execArgv: ['--expose-gc'],
    env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
  },
});
