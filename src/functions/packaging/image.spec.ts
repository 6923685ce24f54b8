import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedisServer, type RedisServer } from '../../cluster/redis-server.ts';
import { nativeAddon } from '../../model/native-backend.ts';
import { seedGradient } from '../../../test/serverless-offline/gradient-fixture.ts';
import { packageFunction } from '../package.ts';

// `function package --backend native`: the container-image build context. Building the image
// itself needs Docker and the network (the Lambda base image, oneDNN's sources), which these
// machines do not have: that step is not run here. What is checked: the context holds
// everything its Dockerfile copies, and its task folder, loaded as the image loads it (the
// addon named by PEERLESS_NATIVE_ADDON, PEERLESS_BACKEND=native), computes a gradient on the
// native backend against a real Redis.
const ADDON = fileURLToPath(new URL('../../../native/addon/build/Release/peerless_native.node', import.meta.url));
const built = !(nativeAddon() instanceof Error);
if (!built) console.warn('the native image\'s task is not run: the native addon is not built here');

describe('the native backend\'s Lambda image build context', () => {
  let out: string;
  let context: string;

  beforeAll(async () => {
    out = mkdtempSync(join(tmpdir(), 'peerless-image-'));
    const r = await packageFunction(out, { backend: 'native' });
    expect(r.backend).toBe('native');
    context = r.path;
    expect(r.instructions).toContain(`docker build --platform linux/amd64 -t peerless-native ${context}`);
  }, 120_000);
  afterAll(() => {
    if (out) rmSync(out, { recursive: true, force: true });
  });

  it('holds what the Dockerfile copies: the task, and the addon\'s sources with their build file', () => {
    const docker = readFileSync(join(context, 'Dockerfile'), 'utf8');
    expect(docker).toMatch(/^FROM public\.ecr\.aws\/lambda\/nodejs:20 AS build$/m);
    expect(docker).toContain('oneDNN/archive/refs/tags/v2.6.3.tar.gz');
    expect(docker).toMatch(/^CMD \["lambda-entry\.handler"\]$/m);
    for (const f of ['lambda-entry.mjs', 'node_modules/@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm']) {
      expect(existsSync(join(context, 'task', f)), f).toBe(true);
    }
    const gyp = JSON.parse(readFileSync(join(context, 'addon', 'binding.gyp'), 'utf8')) as { targets: { sources: string[] }[] };
    for (const src of gyp.targets[0]!.sources) {
      expect(readFileSync(join(context, 'addon', src)).equals(readFileSync(fileURLToPath(new URL(`../../../native/addon/${src}`, import.meta.url))))).toBe(true);
    }
    const pkg = JSON.parse(readFileSync(join(context, 'addon', 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    expect(Object.keys(pkg.dependencies).sort()).toEqual(['node-addon-api', 'node-gyp']);
  });

  describe.skipIf(!built)('its task, run as the image runs it', () => {
    let redis: RedisServer;
    beforeAll(async () => {
      redis = await startRedisServer();
    });
    afterAll(async () => {
      await redis?.stop();
    });

    it('computes a gradient on the native backend and pushes it into Redis', async () => {
      const seeded = await seedGradient(redis.url, { prefix: 'img' });
      const script = join(out, 'invoke.mjs');
      writeFileSync(script, [
        `const { handler } = await import(${JSON.stringify(join(context, 'task', 'lambda-entry.mjs'))});`,
        `const r = await handler({ function: 'gradient', payload: ${JSON.stringify(seeded.event)} });`,
        'console.log(JSON.stringify(r));',
        'process.exit(0);',
      ].join('\n'));
      const stdout = await new Promise<string>((resolve, reject) => {
        execFile(process.execPath, [script], { env: { ...process.env, PEERLESS_NATIVE_ADDON: ADDON, PEERLESS_BACKEND: 'native' }, timeout: 120_000 },
          (err, so, se) => (err ? reject(new Error(`${err.message}\n${se}`)) : resolve(so)));
      });
      const r = JSON.parse(stdout.trim().split('\n').pop()!) as { result: { backend: string; samples: number; done: boolean } };
      expect(r.result).toMatchObject({ backend: 'native', samples: 16, done: true });
    }, 120_000);
  });
});
