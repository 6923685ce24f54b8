// The local platform's worker threads start here, from a checkout (TypeScript through tsx,
// under vitest, tsx or plain node: no build step) and from the built package (the compiled
// JavaScript beside this file, which scripts/build.sh copies there).
import { importBeside } from '../../import-beside.mjs';

await importBeside(import.meta.url, 'worker');
