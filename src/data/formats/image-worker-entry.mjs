// The image-folder decoder's worker starts here, from a checkout (TypeScript through tsx) and
// from the built package (the compiled JavaScript beside this file), as the local platform's
// function workers do.
import { importBeside } from '../../import-beside.mjs';

await importBeside(import.meta.url, 'image-worker');
