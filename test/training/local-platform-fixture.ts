import { afterAll, beforeAll } from 'vitest';
import { initBackend } from '../../src/model/backend.ts';
import { LocalPlatform } from '../../src/platform/local/local-platform.ts';

/**
 * One warm local platform (2 worker threads) for a spec file, and the wasm backend in the
 * test's own process (where the test builds its models): registered as the file's hooks.
 * Returns a getter, valid inside tests.
 */
export function useLocalPlatform(): () => LocalPlatform {
  let platform: LocalPlatform | undefined;
  beforeAll(async () => {
    await initBackend('wasm');
    platform = new LocalPlatform({ workers: 2 });
    await platform.warm();
  });
  afterAll(async () => {
    await platform?.close();
  });
  return () => platform!;
}
