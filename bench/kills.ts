/**
 * `peerless bench kills`: the reliability issue's second target, "a peer or its Redis killed at
 * any phase: the survivors lose at most one deadline", measured. Three `peerless peer`
 * processes with their own redis-servers train (tiny synthetic CNN, one batch per round); the
 * victim, the round's coordinator (p0, the lowest id) or another member (p2), is told to stop
 * before a phase once all three have been members a few rounds (PEERLESS_TEST_PAUSE_AT: chosen
 * by the peer's own phase event, not a timer), and then its process is SIGKILLed, or its redis-server is. The survivors' round log (their
 * Redis' stream of completed rounds) gives the time lost: the rounds around the kill, less as
 * many clean rounds, in ms and in deadlines. Then the survivors are stopped at one round and
 * their checksums compared.
 */
import { K } from '../src/peer/net/keys.ts';
import { requestStop } from '../src/peer/net/stop.ts';
import type { Phase } from '../src/peer/round-machine.ts';
import type { PeerOutcome } from '../src/peer/types.ts';
import { closeRedis, type Redis } from '../src/tensor/redis-client.ts';
import { pausedTrio, type PeerProcess, type PeerTrio } from './peer-process.ts';
import { median } from './stats.ts';

export const KILL_PHASES = ['computing', 'averaging', 'exchanging', 'aggregating', 'updating', 'verifying', 'checking'] as const satisfies readonly Phase[];
export type KillPhase = (typeof KILL_PHASES)[number];
export const VICTIMS = ['coordinator', 'member'] as const;
export type Victim = (typeof VICTIMS)[number];
export const KILLED = ['process', 'redis'] as const;
export type Killed = (typeof KILLED)[number];

export interface KillBenchOptions {
  /** The network's deadline, ms (default 4000). */
  deadlineMs?: number;
  phases?: readonly KillPhase[];
  victims?: readonly Victim[];
  killed?: readonly Killed[];
  onProgress?: (done: number, total: number, what: string) => void;
}

export interface KillRow {
  victim: Victim;
  /** The victim's id: p0 coordinates every round, p2 never does. */
  peer: string;
  killed: Killed;
  phase: KillPhase;
  /** The round the victim stopped in. */
  round: number;
  /** The survivors' median clean round before the kill, ms. */
  cleanRoundMs: number;
  /** The rounds from the kill's to three after it, less as many clean rounds, ms. */
  lostMs: number;
  /** lostMs / the deadline. */
  lostDeadlines: number;
  /** Both survivors stopped at the same round with one checksum. */
  identical: boolean;
}

export interface KillReport {
  deadlineMs: number;
  rows: KillRow[];
  /** The largest lostDeadlines (target: at most 1). */
  worst: number;
}

const ROUNDS_AFTER = 3;

export async function runKillBench(o: KillBenchOptions = {}): Promise<KillReport> {
  const deadlineMs = o.deadlineMs ?? 4_000;
  const phases = o.phases ?? KILL_PHASES, victims = o.victims ?? VICTIMS, killed = o.killed ?? KILLED;
  check('phase', phases, KILL_PHASES);
  check('victim', victims, VICTIMS);
  check('killed', killed, KILLED);
  if (!(Number.isInteger(deadlineMs) && deadlineMs >= 1_000)) throw new Error(`bench kills: --deadline must be a whole number of ms, at least 1000, got ${deadlineMs}`);
  const cases = victims.flatMap((victim) => killed.flatMap((k) => phases.map((phase) => ({ victim, killed: k, phase }))));
  const rows: KillRow[] = [];
  for (const [i, c] of cases.entries()) {
    o.onProgress?.(i, cases.length, `${c.victim} ${c.killed} before ${c.phase}`);
    rows.push(await killOnce(c.victim, c.killed, c.phase, deadlineMs));
  }
  o.onProgress?.(cases.length, cases.length, 'done');
  return { deadlineMs, rows, worst: Math.max(...rows.map((r) => r.lostDeadlines)) };
}

function check<T extends string>(what: string, given: readonly T[], known: readonly T[]): void {
  if (given.length === 0) throw new Error(`bench kills: name at least one ${what} (known: ${known.join(', ')})`);
  for (const g of given) if (!known.includes(g)) throw new Error(`bench kills: unknown ${what} "${g}" (known: ${known.join(', ')})`);
}

async function killOnce(victim: Victim, killed: Killed, phase: KillPhase, deadlineMs: number): Promise<KillRow> {
  const v = victim === 'coordinator' ? 0 : 2;
  const survivors = [0, 1, 2].filter((i) => i !== v);
  const trio: PeerTrio = { servers: [], clients: [], peers: [] };
  const { servers, clients, peers } = trio;
  try {
    const round = await pausedTrio(trio, phase, v, deadlineMs, 120_000);
    const [a, b] = survivors;
    if (killed === 'process') peers[v].kill('SIGKILL');
    else await servers[v].kill();

    // Bounded against a hang: a run that never gets past the kill is what this measures, loudly.
    const done = await untilRecorded(clients[a], round + ROUNDS_AFTER, peers[a], 30 * deadlineMs + 60_000);
    const at = (r: number) => {
      const t = done.get(r);
      if (t === undefined) throw new Error(`bench kills: ${peers[a].id} has no record of round ${r} (it has ${[...done.keys()].join(' ')}):\n${peers[a].stderr()}`);
      return t;
    };
    // Clean rounds: those this survivor took part in before the kill (it may have joined late).
    const deltas = [...done.keys()].filter((r) => r < round && done.has(r - 1) && r - 1 >= 1).map((r) => at(r) - at(r - 1));
    if (deltas.length === 0) throw new Error(`bench kills: ${peers[a].id} completed no clean round before round ${round}`);
    const clean = median(deltas);
    const span = ROUNDS_AFTER + 1;
    const lostMs = Math.max(0, at(round + ROUNDS_AFTER) - at(round - 1) - span * clean);

    if (killed === 'redis') peers[v].kill('SIGKILL');
    const outcomes = await stopAll([clients[a], clients[b]], [peers[a], peers[b]]);
    const identical = outcomes.every((x) => x?.state === 'done') && new Set(outcomes.map((x) => x?.checksum)).size === 1;
    return { victim, peer: `p${v}`, killed, phase, round, cleanRoundMs: clean, lostMs, lostDeadlines: lostMs / deadlineMs, identical };
  } catch (err) {
    // What every peer said: the story of the case that went wrong.
    // A peer that ended said why only in its outcome (stdout, --json): that too.
    const ended = await Promise.all(peers.map((p) => Promise.race([p.outcome, Promise.resolve(undefined)])));
    const why = (o: PeerOutcome | null | undefined) => (o === undefined ? '' : o === null ? '\n(killed)' : `\nended ${o.state} after ${o.rounds} rounds${o.error ? `: ${o.error}` : ''}`);
    const told = peers.map((p, i) => `--- ${p.id}\n${p.stderr().trim().split('\n').slice(-20).join('\n')}${why(ended[i])}`).join('\n');
    throw new Error(`bench kills: ${victim} ${killed} before ${phase}: ${(err as Error).message.split('\n')[0]}\n${told}`);
  } finally {
    for (const p of peers) p.kill('SIGKILL');
    await Promise.all(clients.map((c) => closeRedis(c).catch(() => {})));
    await Promise.all(servers.map((s) => s.stop().catch(() => {})));
  }
}

/** Polls `client`'s round log until it records round `r` (bounded); resolves with roundTimes. */
async function untilRecorded(client: Redis, r: number, peer: PeerProcess, boundMs: number): Promise<Map<number, number>> {
  for (const end = Date.now() + boundMs; ; await new Promise((res) => setTimeout(res, 100))) {
    const done = await roundTimes(client);
    if (done.has(r)) return done;
    if (Date.now() > end) throw new Error(`bench kills: ${peer.id} did not complete round ${r} within ${boundMs / 1000} s:\n${peer.stderr()}`);
  }
}

/** When each round was completed, from a peer's round log (the stream ids are its clock). */
async function roundTimes(client: Redis): Promise<Map<number, number>> {
  const entries = await client.xRange(K.roundLog, '-', '+');
  return new Map(entries.map((e) => [(JSON.parse(e.message.m) as { round: number }).round, Number(e.id.split('-')[0])]));
}

/** Asks the survivors to stop at one round; resolves with their outcomes (bounded). */
async function stopAll(clients: Redis[], peers: PeerProcess[]): Promise<(PeerOutcome | null)[]> {
  await requestStop(clients);
  const bound = new Promise<null[]>((resolve) => setTimeout(() => resolve(peers.map(() => null)), 60_000).unref());
  return Promise.race([Promise.all(peers.map((p) => p.outcome)), bound]);
}
