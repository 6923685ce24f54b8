#!/usr/bin/env node
// The `peerless` command. From a checkout (src/ beside bin/) it runs the TypeScript CLI through
// tsx, so no build step stands between an edit and a run; the installed package runs the
// JavaScript that `npm run build` compiled into dist/.
// The AWS SDK warns on Node 20 about its future Node 22 requirement; Node 20 is supported here.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

import { existsSync } from 'node:fs';

if (existsSync(new URL('../src/cli/main.ts', import.meta.url))) {
  (await import('tsx/esm/api')).register();
  await import('../src/cli/main.ts');
} else {
  await import('../dist/src/cli/main.js');
}
