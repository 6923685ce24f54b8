import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { startRedisServer, type RedisServer } from '../src/cluster/redis-server.ts';
import { K } from '../src/peer/net/keys.ts';
import type { MemberRecord } from '../src/peer/net/membership.ts';
import type { Phase } from '../src/peer/round-machine.ts';
import type { PeerOutcome } from '../src/peer/types.ts';
import { connectRedis, type Redis } from '../src/tensor/redis-client.ts';

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
   * for an event of the peer. With `from` (a length of stderr taken earlier), only lines
   * printed after it count: an event that may also have happened before (a drop, a join)
   * is then this one. Rejects when the process ends first, or after `boundMs` (a bound
   * against hanging, never an assertion about speed).
   */
  line(pattern: RegExp, boundMs?: number, from?: number): Promise<string>;
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
   * for an event of the process. With `from` (a length of stderr), only what was printed
   * after it. Rejects when the process ends first, or after `boundMs` (a bound against
   * hanging, never an assertion about speed).
   */
  line(pattern: RegExp, boundMs?: number, from?: number): Promise<string>;
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
  // 'close', not 'exit': 'exit' can come before the last of its output is read, and a peer
  // prints its outcome (JSON on stdout) just before it exits.
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('close', (code, signal) => { exited = true; for (const l of listeners) l(); resolve({ code, signal }); });
  });
  const id = args.indexOf('--id');
  const name = id >= 0 ? `${args[0]} ${args[id + 1]}` : args[0];
  const line = (pattern: RegExp, boundMs = 180_000, from = 0) => new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`${name}: no line matching ${pattern} within ${boundMs / 1000} s:\n${err}`)), boundMs);
    const check = () => {
      const hit = err.slice(from).split('\n').find((l) => pattern.test(l));
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

/**
 * Resolves with the first match of `pattern` in what `p` printed after `mark` (the length of its
 * stderr taken earlier): an event after a given moment, such as a resume or a heal, where
 * `line` would also find an older one. Rejects when the peer ends first.
 */
export function matchAfter(p: PeerProcess, mark: number, pattern: RegExp): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    const poll = setInterval(() => {
      const m = pattern.exec(p.stderr().slice(mark));
      if (m) { clearInterval(poll); resolve(m); }
    }, 50);
    void p.outcome.then(() => { clearInterval(poll); reject(new Error(`${p.id} ended: ${p.stderr()}`)); });
  });
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
 * Waits until a network has settled: `records` (a member's Redis) lists `n` live members, and
 * `survivor` has completed four rounds since the last of them joined, with the same `n` still
 * members then: every member counts in a quorum (quorumBase) and in the rounds' timing. (A
 * member dropped and readmitted meanwhile is new again: in a `.ci/run`, p1 sat round 1 out and
 * came back at round 41, when the survivor's own round count already said "settled".) Bounded
 * against a hang.
 */
async function untilSettled(records: Redis, n: number, survivor: Redis, peer: PeerProcess, boundMs = 120_000): Promise<void> {
  const live = async () => Object.values(await records.hGetAll(K.members)).map((m) => JSON.parse(m) as MemberRecord).filter((m) => m.leftAt === undefined);
  const joinedBy = (members: MemberRecord[]) => members.map((m) => `${m.id}@${m.fromRound}`).sort().join(' ');
  for (const end = Date.now() + boundMs; ; await new Promise((r) => setTimeout(r, 100))) {
    const members = await live();
    if (members.length === n) {
      await untilRoundOf(survivor, Math.max(...members.map((m) => m.fromRound)) + 4, peer, Math.max(1, end - Date.now()));
      if (joinedBy(await live()) === joinedBy(members)) return;
    }
    if (Date.now() > end) throw new Error(`the ${n} peers did not all join, or did not stay members, within ${boundMs / 1000} s:\n${peer.stderr()}`);
  }
}

/** What a three-peer network runs on; the caller stops it (also when starting it failed halfway). */
export interface PeerTrio {
  servers: RedisServer[];
  clients: Redis[];
  peers: PeerProcess[];
}

/**
 * Three `peerless peer` processes, p0 founding with `deadlineMs` and p1, p2 joining through it,
 * each on a redis-server of its own (pushed into `trio`). Once the network has settled, peer
 * `v` is armed (PEERLESS_TEST_PAUSE_AT=phase:armed, SIGUSR1) and stops before `phase`: the
 * fault tests and `bench kills` then kill it, or its Redis, there. Resolves with the round it
 * stopped in; `pauseBoundMs` bounds the wait for it against a hang. `founderFlags` add to the
 * network's configuration (the founder's flags), e.g. another exchange.
 */
export async function pausedTrio(trio: PeerTrio, phase: Phase, v: number, deadlineMs: number, pauseBoundMs: number, founderFlags: string[] = []): Promise<number> {
  trio.servers.push(...(await Promise.all([0, 1, 2].map(() => startRedisServer()))));
  trio.clients.push(...(await Promise.all(trio.servers.map((s) => connectRedis({ url: s.url })))));
  const pause = (i: number): Record<string, string> => (i === v ? { PEERLESS_TEST_PAUSE_AT: `${phase}:armed` } : {});
  const own = (i: number) => ['--redis', trio.servers[i].url, '--shard', `${i}/3`];
  // Checks every 3 rounds (with nothing to evaluate: validation 0), so "checking" comes round too.
  trio.peers.push(spawnPeer('p0', [...own(0), ...NETWORK_FLAGS, '--check-every', '3', '--rounds', '100000', '--deadline', String(deadlineMs), ...founderFlags], pause(0)));
  for (const i of [1, 2]) trio.peers.push(spawnPeer(`p${i}`, [...own(i), '--bootstrap', trio.servers[0].url], pause(i)));
  // Armed only once all three have been members a few rounds: a coordinator killed while a
  // joiner is still new is another story (the newcomer only breaks ties: holdsQuorum).
  const survivor = v === 1 ? 0 : 1;
  await untilSettled(trio.clients[0], 3, trio.clients[survivor], trio.peers[survivor]);
  trio.peers[v].kill('SIGUSR1');
  const paused = await trio.peers[v].line(new RegExp(`paused before ${phase} of round \\d+`), pauseBoundMs);
  return Number(/round (\d+)/.exec(paused)![1]);
}
