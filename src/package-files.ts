/**
 * Where the package's built native parts may go: the package folder when this user may write
 * it, else a per-user cache ($XDG_CACHE_HOME/peerless, default ~/.cache/peerless), one folder
 * per package version. Shared by the Redis module's and the compute addon's first-use builds.
 */
import { accessSync, constants, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from './package-root.ts';

export function writable(dir: string): boolean {
  try {
    accessSync(dir, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** $XDG_CACHE_HOME/peerless/<name> (default ~/.cache/peerless/<name>); not created here. */
export function userCacheDir(name: string): string {
  return join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'peerless', name);
}

export function packageVersion(): string {
  return (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
}
