// Worker threads run TypeScript through tsx, so the pool works the same from a checkout,
// under vitest, and from the CLI, with no build step.
import { register } from 'tsx/esm/api';

register();
await import('./worker.ts');
