// Each bench peer runs in its own thread, as each peer of a real network runs in its own
// process: TypeScript through tsx from a checkout, the compiled JavaScript beside this file
// in the built package.
import { importBeside } from '../src/import-beside.mjs';

await importBeside(import.meta.url, 'round-peer');
