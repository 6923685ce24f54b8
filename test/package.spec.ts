import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * The package as a user gets it: `npm pack` (which builds dist/ first), unpacked into a
 * folder of its own, and used from another project as `import { train } from 'peerless'`
 * and as the `peerless` command, running the compiled JavaScript (no src/, no tsx).
 * Its dependencies are this checkout's node_modules, linked: the registry is not the subject.
 */
const run = promisify(execFile);
const repo = resolve(import.meta.dirname, '..');
const tmp = mkdtempSync(join(tmpdir(), 'peerless-package-'));
let pkg: string;
let files: string[];

beforeAll(async () => {
  const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', tmp], { cwd: repo, maxBuffer: 64 << 20 });
  const [packed] = JSON.parse(stdout.slice(stdout.indexOf('['))) as { filename: string; files: { path: string }[] }[];
  files = packed!.files.map((f) => f.path);
  await run('tar', ['xzf', join(tmp, packed!.filename), '-C', tmp]);
  pkg = join(tmp, 'package');
  symlinkSync(join(repo, 'node_modules'), join(pkg, 'node_modules'));
}, 600_000);

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('the package as installed', () => {
  it('ships the built JavaScript with its types, the native sources and the docs, and no tests', () => {
    expect(files).toContain('dist/src/api.js');
    expect(files).toContain('dist/src/api.d.ts');
    expect(files).toContain('dist/src/platform/local/worker-entry.mjs');
    expect(files).toContain('dist/src/cli/dashboard/page/index.html');
    expect(files).toContain('native/peerless.c');
    expect(files).toContain('scripts/install-module.mjs');
    expect(files).toContain('README.md');
    expect(files.filter((f) => /\.spec\.|^test\/|^src\/|test-util|test-fixture/.test(f))).toEqual([]);
  });

  it('the peerless command runs the compiled CLI, also for a user who does not own the package', async () => {
    const version = await run(process.execPath, [join(pkg, 'bin', 'peerless.js'), '--version']);
    expect(version.stdout.trim()).toBe('0.1.0');
    const help = await run(process.execPath, [join(pkg, 'bin', 'peerless.js'), 'train', '--help']);
    expect(help.stdout).toContain('--dataset <source>');
    if (process.getuid?.() === 0) {
      await run('chmod', ['-R', 'a+rX', tmp]);
      const asNobody = await run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, join(pkg, 'bin', 'peerless.js'), '--help']);
      expect(asNobody.stdout).toContain('Usage: peerless');
    }
  });

  it('import { train } from \'peerless\' trains from another project, on the compiled workers, as a user who does not own the package', async () => {
    const app = join(tmp, 'app');
    mkdirSync(join(app, 'node_modules'), { recursive: true });
    symlinkSync(pkg, join(app, 'node_modules', 'peerless'));
    writeFileSync(join(app, 'package.json'), '{ "type": "module" }\n');
    writeFileSync(join(app, 'run.mjs'), `
import { train } from 'peerless';
const { model, summary } = await train({
  model: 'cnn', data: 'synthetic', peers: 2, rounds: 2,
  config: { model: { name: 'cnn', width: 0.25 }, syntheticSize: 512, batchSize: 64, validationSize: 64 },
});
console.log(JSON.stringify({ rounds: summary.rounds, identical: summary.identical, outputs: model.outputs[0].shape, backend: summary.computeBackend }));
`);
    // As a user who does not own the package's folder (root runs the suite here: as nobody), so
    // the Redis module is built into that user's cache, and said once.
    const cache = join(tmp, 'cache');
    mkdirSync(cache);
    const asOther = process.getuid?.() === 0;
    if (asOther) {
      chmodSync(cache, 0o777);
      await run('chmod', ['-R', 'a+rX', tmp]);
    } else {
      console.warn('package.spec: not root, so the API run is this user\'s (the package folder is theirs)');
    }
    const argv = [process.execPath, join(app, 'run.mjs')];
    const command = asOther ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', ...argv] : argv;
    const { stdout, stderr } = await run(command[0]!, command.slice(1), {
      cwd: app, maxBuffer: 16 << 20, env: { ...process.env, XDG_CACHE_HOME: cache, HOME: cache },
    });
    // The packed package holds the addon's sources, not a build: where oneDNN is installed
    // the functions' native backend is built on first use, else they compute on wasm.
    const oneDnn = existsSync('/usr/include/oneapi/dnnl/dnnl.hpp');
    expect(JSON.parse(stdout.trim().split('\n').pop()!)).toEqual({ rounds: 2, identical: true, outputs: [null, 10], backend: oneDnn ? 'native' : 'wasm' });
    if (asOther) {
      expect(stderr).toContain(`peerless: building the Redis module into ${join(cache, 'peerless', 'module-0.1.0')} (the package folder`);
      expect(existsSync(join(cache, 'peerless', 'module-0.1.0', 'peerless.so'))).toBe(true);
      expect(existsSync(join(pkg, 'native', 'build'))).toBe(false);
      if (oneDnn) {
        expect(stderr).toContain(`peerless: building the native compute addon (oneDNN) into ${join(cache, 'peerless', 'addon-0.1.0')} (the package folder`);
        expect(existsSync(join(cache, 'peerless', 'addon-0.1.0', 'peerless_native.node'))).toBe(true);
        expect(existsSync(join(pkg, 'native', 'addon', 'build'))).toBe(false);
      }
    }
  });
});
