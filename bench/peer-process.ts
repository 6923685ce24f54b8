import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { K } from '../src/peer/net/keys.ts';
import type { MemberRecord } from '../src/peer/net/membership.ts';
import type { PeerOutcome } from '../src/peer/types.ts';
import type { Redis } from '../src/tensor/redis-client.ts';

// The `peerless` command beside this file: bench/ in a checkout, dist/bench/ in the package.
const BIN = ['../bin/peerless.js', '../../bin/peerless.js'].map((p) => fileURLToPath(new URL(p, import.meta.url))).find((p) => existsSync(p))!;

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

/** A `peerless` command as a user runs it, with what it printed so far. */
export interface CliRun {
  child: ChildProcess;
  /** Resolves when it ends: its exit code, or the signal that ended it. */
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stdout(): string;
  stderr(): string;
  /**
   * Resolves with the first stderr line (past or future) matching `pattern`: how tests wait
   * for an event of the process. Rejects when the process ends first, or after `boundMs` (a
   * bound against hanging, never an assertion about speed).
   */
  line(pattern: RegExp, boundMs?: number): Promise<string>;
}

/** Runs `peerless ARGS` (bin/peerless.js); `wrapper` runs it under a command (`ip netns exec NS`). */
export function spawnCli(args: string[], env: Record<string, string> = {}, wrapper: string[] = []): CliRun {
  const command = [...wrapper, process.execPath, BIN, ...args];
  const child = spawn(command[0]!, command.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let out = '';
  let err = '';
  let exited = false;
  const listeners = new Set<() => void>();
  child.stdout!.on('data', (d) => { out += d; });
  child.stderr!.on('data', (d) => { err += d; for (const l of listeners) l(); });
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => { exited = true; for (const l of listeners) l(); resolve({ code, signal }); });
  });
  const id = args.indexOf('--id');
  const name = id >= 0 ? `${args[0]} ${args[id + 1]}` : args[0];
  const line = (pattern: RegExp, boundMs = 180_000) => new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`${name}: no line matching ${pattern} within ${boundMs / 1000} s:\n${err}`)), boundMs);
    const check = () => {
      const hit = err.split('\n').find((l) => pattern.test(l));
      if (hit !== undefined) done(null, hit);
      else if (exited) done(new Error(`${name} ended before a line matching ${pattern}:\n${err}`));
    };
    function done(e: Error | null, hit?: string) {
      clearTimeout(timer);
      listeners.delete(check);
      if (e) reject(e); else resolve(hit!);
    }
    listeners.add(check);
    check();
  });
  return { child, exit, stdout: () => out, stderr: () => err, line };
}

/** A `peerless peer` process; `wrapper` runs it under a command (`ip netns exec NS`: on a test host). */
export function spawnPeer(id: string, args: string[], env: Record<string, string> = {}, wrapper: string[] = []): PeerProcess {
  const run = spawnCli(['peer', '--id', id, '--workers', '1', '--json', ...args], { PEERLESS_BACKEND: 'wasm', ...env }, wrapper);
  const outcome = run.exit.then(({ code, signal }): PeerOutcome | null => {
    if (signal === 'SIGKILL') return null;
    try {
      return JSON.parse(run.stdout()) as PeerOutcome;
    } catch {
      return { id, state: 'failed', rounds: 0, stopReason: null, error: `exit ${code}: ${run.stderr().trim().split('\n').slice(-3).join(' | ')}`, checksum: null };
    }
  });
  return { id, child: run.child, outcome, stderr: run.stderr, line: run.line, kill: (s = 'SIGKILL') => { run.child.kill(s); } };
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

/**
 * Waits until a network has settled: `records` (a member's Redis) lists `n` members, and
 * `survivor` has completed four rounds since the last of them joined, so every member counts
 * in a quorum (quorumBase) and in the rounds' timing. Bounded against a hang.
 */
export async function untilSettled(records: Redis, n: number, survivor: Redis, peer: PeerProcess, boundMs = 120_000): Promise<void> {
  for (const end = Date.now() + boundMs; ; await new Promise((r) => setTimeout(r, 100))) {
    const members = Object.values(await records.hGetAll(K.members)).map((m) => JSON.parse(m) as MemberRecord).filter((m) => m.leftAt === undefined);
    if (members.length === n) return untilRoundOf(survivor, Math.max(...members.map((m) => m.fromRound)) + 4, peer, boundMs);
    if (Date.now() > end) throw new Error(`the ${n} peers did not all join within ${boundMs / 1000} s:\n${peer.stderr()}`);
  }
}
