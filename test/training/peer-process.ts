import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { K } from '../../src/peer/net/keys.ts';
import type { PeerOutcome } from '../../src/peer/types.ts';
import type { Redis } from '../../src/tensor/redis-client.ts';

const BIN = fileURLToPath(new URL('../../bin/peerless.js', import.meta.url));

/** A `peerless peer` process, as a user would run one per machine. */
export interface PeerProcess {
  id: string;
  child: ChildProcess;
  /** Resolves with the JSON outcome the peer prints when it ends (null if it was killed). */
  outcome: Promise<PeerOutcome | null>;
  stderr(): string;
  /**
   * Resolves with the first stderr line (past or future) matching `pattern`: how tests wait
   * for an event of the peer. Rejects when the process ends first, or after `boundMs` (a
   * bound against hanging, never an assertion about speed).
   */
  line(pattern: RegExp, boundMs?: number): Promise<string>;
  kill(signal?: NodeJS.Signals): void;
}

/** The training flags every test network uses: tiny, synthetic, fast rounds. */
export const NETWORK_FLAGS = [
  '--dataset', 'synthetic', '--model', 'cnn', '--width', '0.25', '--batch-size', '32', '--batches-per-round', '1',
  '--epochs', '1000', '--check-every', '1000', '--validation', '0', '--optimizer', 'adam', '--lr', '0.003', '--seed', '3',
];

/** A `peerless peer` process; `wrapper` runs it under a command (`ip netns exec NS`: on a test host). */
export function spawnPeer(id: string, args: string[], env: Record<string, string> = {}, wrapper: string[] = []): PeerProcess {
  const command = [...wrapper, process.execPath, BIN, 'peer', '--id', id, '--workers', '1', '--json', ...args];
  const child = spawn(command[0]!, command.slice(1), {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, PEERLESS_BACKEND: 'wasm', ...env },
  });
  let out = '';
  let err = '';
  let exited = false;
  const listeners = new Set<() => void>();
  child.stdout!.on('data', (d) => { out += d; });
  child.stderr!.on('data', (d) => { err += d; for (const l of listeners) l(); });
  child.once('exit', () => { exited = true; for (const l of listeners) l(); });
  const line = (pattern: RegExp, boundMs = 180_000) => new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`peer ${id}: no line matching ${pattern} within ${boundMs / 1000} s:\n${err}`)), boundMs);
    const check = () => {
      const hit = err.split('\n').find((l) => pattern.test(l));
      if (hit !== undefined) done(null, hit);
      else if (exited) done(new Error(`peer ${id} ended before a line matching ${pattern}:\n${err}`));
    };
    function done(e: Error | null, hit?: string) {
      clearTimeout(timer);
      listeners.delete(check);
      if (e) reject(e); else resolve(hit!);
    }
    listeners.add(check);
    check();
  });
  const outcome = new Promise<PeerOutcome | null>((resolve) => {
    child.once('exit', (code, signal) => {
      if (signal === 'SIGKILL') return resolve(null);
      try {
        resolve(JSON.parse(out) as PeerOutcome);
      } catch {
        resolve({ id, state: 'failed', rounds: 0, stopReason: null, error: `exit ${code}: ${err.trim().split('\n').slice(-3).join(' | ')}`, checksum: null });
      }
    });
  });
  return { id, child, outcome, stderr: () => err, line, kill: (s = 'SIGKILL') => { child.kill(s); } };
}

/** A peer's completed-update marker in its Redis: the round it is in (-1 before any). */
export async function roundOf(client: Redis): Promise<number> {
  return Number((await client.get(K.round)) ?? -1);
}

/**
 * Waits for a peer's round marker to reach r: an event in its Redis, polled, bounded against
 * a hang (never an assertion about speed). `peer` says whose it is in the error.
 */
export async function untilRoundOf(client: Redis, r: number, peer: PeerProcess | undefined, boundMs: number): Promise<void> {
  const end = Date.now() + boundMs;
  while ((await roundOf(client)) < r) {
    if (Date.now() > end) throw new Error(`peer ${peer?.id} did not reach round ${r} (at ${await roundOf(client)}): ${peer?.stderr()}`);
    await new Promise((res) => setTimeout(res, 50));
  }
}
