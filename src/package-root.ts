/**
 * The folder of the Peerless package (the one holding its package.json and `native/`), found
 * by walking up from this file: the same answer from a checkout (src/) and from the built
 * package (dist/src/), whatever the working directory.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | null | undefined;

/** The package's folder, or null where there is none (a function bundled for Lambda). */
export function findPackageRoot(): string | null {
  if (root !== undefined) return root;
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'peerless') return (root = dir);
    if (dirname(dir) === dir) return (root = null);
  }
}

export function packageRoot(): string {
  const r = findPackageRoot();
  if (r === null) throw new Error(`no package.json of peerless above ${fileURLToPath(import.meta.url)}`);
  return r;
}
