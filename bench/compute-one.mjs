// One measurement of `peerless bench compute` in a process of its own, so that its peak RSS
// is one function's: TypeScript through tsx from a checkout, the compiled JavaScript beside
// this file in the built package.
import { importBeside } from '../src/import-beside.mjs';

await importBeside(import.meta.url, 'compute-one');
