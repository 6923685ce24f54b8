// One measurement of `peerless bench data` in a process of its own, so its peak RSS is the
// loading's alone: TypeScript through tsx from a checkout, the compiled JavaScript beside
// this file in the built package.
import { existsSync } from 'node:fs';

if (existsSync(new URL('./data-one.ts', import.meta.url))) {
  (await import('tsx/esm/api')).register();
  await import('./data-one.ts');
} else {
  await import('./data-one.js');
}
