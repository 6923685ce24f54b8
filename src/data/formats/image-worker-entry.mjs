// The image-folder decoder's worker starts here, from a checkout (TypeScript through tsx) and
// from the built package (the compiled JavaScript beside this file), as the local platform's
// function workers do.
import { existsSync } from 'node:fs';

if (existsSync(new URL('./image-worker.ts', import.meta.url))) {
  (await import('tsx/esm/api')).register();
  await import('./image-worker.ts');
} else {
  await import('./image-worker.js');
}
