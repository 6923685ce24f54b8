// npm's install step: builds the Redis module into the package's native/build when it can.
// It never fails the install: where it cannot (no compiler, a folder the user does not own),
// the module is built on first use instead (src/cluster/module-path.ts), into the per-user
// cache when the package folder is not writable.
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const native = join(dirname(fileURLToPath(import.meta.url)), '..', 'native');
try {
  execFileSync('make', ['-s', '-C', native], { stdio: ['ignore', 'ignore', 'pipe'] });
} catch (err) {
  const why = err.stderr?.toString().trim().split('\n').pop() || err.message;
  process.stderr.write(`peerless: the Redis module was not built at install (${why}); it is built on first use\n`);
}
