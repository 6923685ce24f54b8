import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { packageVersion, userCacheDir, writable } from '../package-files.ts';
import { packageRoot } from '../package-root.ts';

/** The package's `native/` folder, found from this file so it works from any cwd. */
export const NATIVE_DIR = join(packageRoot(), 'native');
/** Where `make -C native` puts the module. */
export const MODULE_PATH = join(NATIVE_DIR, 'build', 'peerless.so');
/** A module built elsewhere, used as it is. */
export const MODULE_ENV = 'PEERLESS_MODULE';

/**
 * The Redis module, built when it is missing or older than its sources, so a fresh clone or
 * install needs no manual step:
 * - PEERLESS_MODULE names one built elsewhere;
 * - else the package's own native/build (built at install, or here when the folder is writable);
 * - else, for a user who does not own the package's folder (a global install by root), a
 *   per-user cache, $XDG_CACHE_HOME/peerless (default ~/.cache/peerless), said in one line.
 * Returns the path of the shared object.
 */
export function ensureModuleBuilt(log: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): string {
  const given = process.env[MODULE_ENV];
  if (given) {
    if (!existsSync(given)) throw new Error(`${MODULE_ENV}=${given}: no such file (the Peerless Redis module, peerless.so)`);
    return given;
  }
  const newest = Math.max(...readdirSync(NATIVE_DIR).filter((f) => /\.(c|h)$|^Makefile$/.test(f)).map((f) => statSync(join(NATIVE_DIR, f)).mtimeMs));
  const fresh = (so: string) => existsSync(so) && statSync(so).mtimeMs >= newest;
  if (fresh(MODULE_PATH)) return MODULE_PATH;
  if (writable(NATIVE_DIR) && (!existsSync(join(NATIVE_DIR, 'build')) || writable(join(NATIVE_DIR, 'build')))) {
    make(join(NATIVE_DIR, 'build'));
    return MODULE_PATH;
  }
  const cache = userCacheDir(`module-${packageVersion()}`);
  const cached = join(cache, 'peerless.so');
  if (!fresh(cached)) {
    log(`peerless: building the Redis module into ${cache} (the package folder ${NATIVE_DIR} is not writable)`);
    mkdirSync(cache, { recursive: true });
    make(cache);
  }
  return cached;
}

function make(buildDir: string): void {
  try {
    execFileSync('make', ['-s', '-C', NATIVE_DIR, `BUILD=${buildDir}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim() ?? (err as Error).message;
    throw new Error(`building the Redis module failed (make -C ${NATIVE_DIR} BUILD=${buildDir}): ${stderr.split('\n').slice(-3).join(' ')}`);
  }
}
