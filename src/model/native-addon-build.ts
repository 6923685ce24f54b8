/**
 * The native compute addon where a run needs it, built on first use when the install or
 * scripts/setup.sh did not build it (oneDNN installed later, or a package folder the user
 * does not own), as the Redis module is (src/cluster/module-path.ts):
 * - PEERLESS_NATIVE_ADDON names one built elsewhere;
 * - else the package's own native/addon/build (built here when the folder is writable);
 * - else a per-user cache, $XDG_CACHE_HOME/peerless/addon-<version> (default ~/.cache), said
 *   in one line.
 * Only where oneDNN's headers are installed (Debian's libdnnl-dev): elsewhere the functions
 * compute on wasm, as before. A build that fails says why in one line, and wasm is used.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { findPackageRoot } from '../package-root.ts';
import { packageVersion, userCacheDir, writable } from '../package-files.ts';

export const ADDON_ENV = 'PEERLESS_NATIVE_ADDON';
const DNNL_HEADER = '/usr/include/oneapi/dnnl/dnnl.hpp';
const ADDON_FILE = 'peerless_native.node';

/** The addon inside the package (where setup builds it), or null without a package folder. */
export function addonInPackage(): string | null {
  const root = findPackageRoot();
  return root ? join(root, 'native', 'addon', 'build', 'Release', ADDON_FILE) : null;
}

/** The per-user cache's addon for this version of the package. */
export function addonInCache(): string {
  return join(userCacheDir(`addon-${packageVersion()}`), ADDON_FILE);
}

/**
 * The addon's path, built now if it is missing (or older than its sources, in a writable
 * package), or null where it cannot be (no oneDNN headers, no node-gyp, a failed build: said
 * by `log`). Sets PEERLESS_NATIVE_ADDON to a cache-built one, so that function workers started
 * after this load it.
 */
export function ensureNativeAddon(log: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): string | null {
  const given = process.env[ADDON_ENV];
  if (given) return given;
  const root = findPackageRoot();
  const inPackage = addonInPackage();
  if (!root || !inPackage || !existsSync(DNNL_HEADER)) return inPackage && existsSync(inPackage) ? inPackage : null;
  const sources = join(root, 'native', 'addon');
  const names = readdirSync(sources).filter((f) => /\.(cc|h)$|^binding\.gyp$/.test(f));
  const newest = Math.max(...names.map((f) => statSync(join(sources, f)).mtimeMs));
  if (existsSync(inPackage) && statSync(inPackage).mtimeMs >= newest) return inPackage;
  const cached = addonInCache();
  if (!writable(sources) && existsSync(cached)) return (process.env[ADDON_ENV] = cached);
  const gyp = nodeGyp(root);
  if (!gyp) {
    log('peerless: the native compute addon is not built and no node-gyp was found to build it: the functions compute on wasm (scripts/setup.sh builds it)');
    return null;
  }
  try {
    if (writable(sources)) {
      log('peerless: building the native compute addon (oneDNN) in the package, once');
      build(gyp, sources, root);
      return inPackage;
    }
    const cache = dirname(cached);
    log(`peerless: building the native compute addon (oneDNN) into ${cache} (the package folder ${sources} is not writable), once`);
    // Built in a folder of this process's own, then renamed: two processes building at once
    // never load a half-written file.
    const work = join(cache, `build-${process.pid}`);
    mkdirSync(work, { recursive: true });
    try {
      for (const f of names) copyFileSync(join(sources, f), join(work, f));
      build(gyp, work, root);
      renameSync(join(work, 'build', 'Release', ADDON_FILE), cached);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
    return (process.env[ADDON_ENV] = cached);
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim() ?? (err as Error).message;
    log(`peerless: the native compute addon did not build (${stderr.split('\n').slice(-2).join(' ')}): the functions compute on wasm`);
    return null;
  }
}

/** The project's node-gyp, else the one npm carries (npm's own install scripts use it). */
function nodeGyp(root: string): string | null {
  try {
    return createRequire(join(root, 'package.json')).resolve('node-gyp/bin/node-gyp.js');
  } catch {
    const npms = join(dirname(dirname(process.execPath)), 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
    return existsSync(npms) ? npms : null;
  }
}

function build(gyp: string, dir: string, root: string): void {
  // The installed Node headers: node-gyp's download of them may not reach its host.
  const prefix = dirname(dirname(process.execPath));
  const nodedir = existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? prefix : '/usr';
  // binding.gyp finds node-addon-api with require(): from the package's dependencies, also
  // when the build runs in a cache folder outside it.
  const nodePath = [join(root, 'node_modules'), dirname(root), process.env.NODE_PATH].filter(Boolean).join(':');
  execFileSync(process.execPath, [gyp, 'rebuild', `--nodedir=${nodedir}`], {
    cwd: dir, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NODE_PATH: nodePath },
  });
}
