// Worker threads run TypeScript through tsx (as the local platform's workers do).
import { register } from 'tsx/esm/api';

register();
await import('./push-writer.ts');
