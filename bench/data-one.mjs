// One measurement of `peerless bench data` in a process of its own, so its peak RSS is the
// loading's alone; TypeScript through tsx.
import { register } from 'tsx/esm/api';

register();
await import('./data-one.ts');
