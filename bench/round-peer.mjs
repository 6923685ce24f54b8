// Each bench peer runs in its own thread, as each peer of a real network runs in its own
// process: TypeScript through tsx from a checkout, the compiled JavaScript beside this file
// in the built package.
import { existsSync } from 'node:fs';

if (existsSync(new URL('./round-peer.ts', import.meta.url))) {
  (await import('tsx/esm/api')).register();
  await import('./round-peer.ts');
} else {
  await import('./round-peer.js');
}
