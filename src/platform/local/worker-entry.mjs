// Worker threads run TypeScript through tsx, so the pool works the same from a checkout,
// under vitest, under `tsx` and from plain `node`, with no build step.
import { register } from 'tsx/esm/api';

register();
await import('./worker.ts');
