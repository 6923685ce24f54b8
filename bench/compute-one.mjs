// One measurement of `peerless bench compute` in a process of its own, so that its peak RSS
// is one function's; TypeScript through tsx, as the local platform's workers do.
import { register } from 'tsx/esm/api';

register();
await import('./compute-one.ts');
