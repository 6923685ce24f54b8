#!/usr/bin/env node
// The `peerless` command: runs the TypeScript CLI through tsx, so no build step stands
// between a checkout and a run.
// The AWS SDK warns on Node 20 about its future Node 22 requirement; Node 20 is supported here.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
