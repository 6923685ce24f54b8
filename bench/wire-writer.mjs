// A bench round wire writer in its own thread: TypeScript through tsx from a checkout, the
// compiled JavaScript beside this file in the built package.
import { existsSync } from 'node:fs';

if (existsSync(new URL('./wire-writer.ts', import.meta.url))) {
  (await import('tsx/esm/api')).register();
  await import('./wire-writer.ts');
} else {
  await import('./wire-writer.js');
}
