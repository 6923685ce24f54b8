// One measurement of `peerless bench compute` in a process of its own, so that its peak RSS
// is one function's: TypeScript through tsx from a checkout, the compiled JavaScript beside
// this file in the built package.
import { existsSync } from 'node:fs';

if (existsSync(new URL('./compute-one.ts', import.meta.url))) {
  (await import('tsx/esm/api')).register();
  await import('./compute-one.ts');
} else {
  await import('./compute-one.js');
}
