// A bench round wire writer in its own thread: TypeScript through tsx from a checkout, the
// compiled JavaScript beside this file in the built package.
import { importBeside } from '../src/import-beside.mjs';

await importBeside(import.meta.url, 'wire-writer');
