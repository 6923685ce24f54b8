// Each bench peer runs in its own thread, as each peer of a real network runs in its own
// process; TypeScript through tsx, as the local platform's workers do.
import { register } from 'tsx/esm/api';

register();
await import('./round-peer.ts');
