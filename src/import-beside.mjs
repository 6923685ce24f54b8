// How a process or thread of ours starts: the TypeScript module through tsx from a checkout
// (no build step, under vitest, tsx or plain node), or its compiled JavaScript, which
// scripts/build.sh puts beside it, in the built package. Plain JavaScript, since it is what
// registers tsx.
import { existsSync } from 'node:fs';

/** Imports `name` (no extension) from the folder of `base` (the caller's import.meta.url). */
export async function importBeside(base, name) {
  const ts = new URL(`./${name}.ts`, base);
  if (existsSync(ts)) {
    (await import('tsx/esm/api')).register();
    return import(ts.href);
  }
  return import(new URL(`./${name}.js`, base).href);
}
