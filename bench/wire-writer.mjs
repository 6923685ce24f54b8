// A bench round wire writer in its own thread; TypeScript through tsx, as the bench peers are.
import { register } from 'tsx/esm/api';

register();
await import('./wire-writer.ts');
