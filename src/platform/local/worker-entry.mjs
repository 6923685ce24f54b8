// The local platform's worker threads start here, from a checkout (TypeScript through tsx,
// under vitest, tsx or plain node: no build step) and from the built package (the compiled
// JavaScript beside this file, which scripts/build.sh copies there).
import { existsSync } from 'node:fs';

if (existsSync(new URL('./worker.ts', import.meta.url))) {
  (await import('tsx/esm/api')).register();
  await import('./worker.ts');
} else {
  await import('./worker.js');
}
