// npm's install step: builds the Redis module into the package's native/build, and, where
// oneDNN's headers are installed (Debian's libdnnl-dev), the native compute addon into
// native/addon/build, against the installed Node headers. It never fails the install: where
// it cannot build (no compiler, a folder the user does not own), the module is built on first
// use instead (src/cluster/module-path.ts; into the per-user cache when the package folder is
// not writable), and the functions compute on wasm until scripts/setup.sh builds the addon.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const say = (line) => process.stderr.write(`peerless: ${line}\n`);
const reason = (err) => err.stderr?.toString().trim().split('\n').pop() || err.message;

try {
  execFileSync('make', ['-s', '-C', join(root, 'native')], { stdio: ['ignore', 'ignore', 'pipe'] });
} catch (err) {
  say(`the Redis module was not built at install (${reason(err)}); it is built on first use`);
}

/** npm's own node-gyp (npm sets npm_config_node_gyp for install scripts), else a local one. */
function nodeGyp() {
  if (process.env.npm_config_node_gyp && existsSync(process.env.npm_config_node_gyp)) return process.env.npm_config_node_gyp;
  try {
    return createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js');
  } catch {
    return null;
  }
}

const addonDir = join(root, 'native', 'addon');
const gyp = nodeGyp();
if (existsSync('/usr/include/oneapi/dnnl/dnnl.hpp') && existsSync(join(addonDir, 'binding.gyp')) && gyp) {
  // The installed headers: node-gyp's download of them may not reach its host.
  const prefix = dirname(dirname(process.execPath));
  const nodedir = existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? prefix : '/usr';
  try {
    execFileSync(process.execPath, [gyp, 'rebuild', `--nodedir=${nodedir}`], { cwd: addonDir, stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    say(`the native addon was not built at install (${reason(err)}); the functions compute on wasm`);
  }
}
