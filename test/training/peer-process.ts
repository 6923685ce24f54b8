import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { PeerOutcome } from '../../src/peer/types.ts';

const BIN = fileURLToPath(new URL('../../bin/peerless.js', import.meta.url));

/** A `peerless peer` process, as a user would run one per machine. */
export interface PeerProcess {
  id: string;
  child: ChildProcess;
  /** Resolves with the JSON outcome the peer prints when it ends (null if it was killed). */
  outcome: Promise<PeerOutcome | null>;
  stderr(): string;
  kill(signal?: NodeJS.Signals): void;
}

/** The training flags every test network uses: tiny, synthetic, fast rounds. */
export const NETWORK_FLAGS = [
  '--dataset', 'synthetic', '--model', 'cnn', '--width', '0.25', '--batch-size', '32', '--batches-per-round', '1',
  '--epochs', '1000', '--check-every', '1000', '--validation', '0', '--optimizer', 'adam', '--lr', '0.003', '--seed', '3',
];

export function spawnPeer(id: string, args: string[]): PeerProcess {
  const child = spawn(process.execPath, [BIN, 'peer', '--id', id, '--workers', '1', '--json', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, PEERLESS_BACKEND: 'wasm' },
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => { out += d; });
  child.stderr!.on('data', (d) => { err += d; });
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
  return { id, child, outcome, stderr: () => err, kill: (s = 'SIGKILL') => { child.kill(s); } };
}
