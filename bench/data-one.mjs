// One measurement of `peerless bench data` in a process of its own, so its peak RSS is the
// loading's alone: TypeScript through tsx from a checkout, the compiled JavaScript beside
// this file in the built package.
import { importBeside } from '../src/import-beside.mjs';

await importBeside(import.meta.url, 'data-one');
