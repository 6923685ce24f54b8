import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../package-root.ts';

/** The package's `native/` folder, found from this file so it works from any cwd. */
export const NATIVE_DIR = join(packageRoot(), 'native');
/** Where `make -C native` puts the module. */
export const MODULE_PATH = join(NATIVE_DIR, 'build', 'peerless.so');

/**
 * Builds the Redis module when it is missing or older than its sources, so a fresh clone
 * needs no manual step. Returns the path of the shared object.
 */
export function ensureModuleBuilt(): string {
  const sources = readdirSync(NATIVE_DIR).filter((f) => /\.(c|h)$|^Makefile$/.test(f));
  const newest = Math.max(...sources.map((f) => statSync(join(NATIVE_DIR, f)).mtimeMs));
  if (!existsSync(MODULE_PATH) || statSync(MODULE_PATH).mtimeMs < newest) {
    try {
      execFileSync('make', ['-s', '-C', NATIVE_DIR], { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (err) {
      const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim() ?? '';
      throw new Error(`building the Redis module failed (make -C native): ${stderr.split('\n').slice(-3).join(' ')}`);
    }
  }
  return MODULE_PATH;
}
