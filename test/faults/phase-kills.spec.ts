import { afterEach, beforeEach, describe, expect, it, onTestFailed } from 'vitest';
import { startRedisServer, type RedisServer } from '../../src/cluster/redis-server.ts';
import { stopNetwork } from '../../src/cli/commands/stop.ts';
import { K } from '../../src/peer/net/keys.ts';
import type { MemberRecord } from '../../src/peer/net/membership.ts';
import type { Phase } from '../../src/peer/round-machine.ts';
import { closeRedis, connectRedis, type Redis } from '../../src/tensor/redis-client.ts';
import { pausedTrio, spawnPeer, untilRoundOf, type PeerProcess } from '../../bench/peer-process.ts';

/**
 * SIGKILL a peer process, or its redis-server, at every phase of a round (issue 10's fault
 * harness): three `peerless peer` processes with their own redis-servers; once all three have
 * trained together a few rounds, p2 (or p0, the rounds' coordinator) is told to stop before a
 * given phase (PEERLESS_TEST_PAUSE_AT: the phase is chosen by the peer's own event, not a
 * timer) and says so. Then either the process is killed there (the survivors drop it at
 * the deadline and stay identical; restarted on its Redis, it finds out, rejoins and ends
 * identical), or its redis-server is killed and restarted empty and the peer resumed (it finds
 * its state gone, stores its data again and rejoins by state copy). Each wait is for an event,
 * bounded against a hang.
 */
let servers: RedisServer[] = [];
let peers: PeerProcess[] = [];
let clients: Redis[] = [];

beforeEach(() => {
  // A failure shows what every peer said: the story of the round it got stuck in.
  onTestFailed(() => { for (const p of peers) if (p) console.error(`--- ${p.id}\n${p.stderr().split('\n').slice(-40).join('\n')}`); });
});

afterEach(async () => {
  for (const p of peers) p?.kill();
  await Promise.all(clients.map(closeRedis));
  await Promise.all(servers.map((s) => s.stop()));
  servers = []; peers = []; clients = [];
});

// Bounds against a hang, never speeds. A rejoining peer asks the members it knew for up to ten
// deadlines, each ask waiting up to two for the admission: on a busy machine that has run past
// a minute, so the wait for it, and each case, are bounded above that.
const REJOIN_BOUND_MS = 180_000;
const CASE_BOUND_MS = 300_000;

const untilRound = (i: number, r: number, boundMs = 60_000) => untilRoundOf(clients[i], r, peers[i], boundMs);

function peer(i: number, extra: string[], env: Record<string, string> = {}): PeerProcess {
  const p = spawnPeer(`p${i}`, ['--redis', servers[i].url, '--shard', `${i}/${servers.length}`, ...extra], env);
  peers[i] = p;
  return p;
}

const PHASES: Phase[] = ['computing', 'averaging', 'exchanging', 'aggregating', 'updating', 'verifying', 'checking'];

/** Three peers; peer `v` stops before `phase` once all three have trained together a few rounds. Resolves with that round. */
const pausedBefore = (phase: Phase, v = 2, founderFlags: string[] = []): Promise<number> => pausedTrio({ servers, clients, peers }, phase, v, 4_000, 60_000, founderFlags);

/** Stops the network; all three end done, with one checksum and one membership, `back` (rejoined) in it. */
async function endIdentical(back = 'p2'): Promise<void> {
  await stopNetwork(servers[0].url, undefined, undefined, true);
  const ended = Promise.all(peers.map((p) => p.outcome));
  const bound = new Promise<'late'>((resolve) => setTimeout(() => resolve('late'), 60_000).unref());
  const outcomes = await Promise.race([ended, bound]);
  if (outcomes === 'late') {
    // What tells a hang from a stop that never came: each peer's round, the stop keys in its Redis, whether it exited.
    const keys = await Promise.all(clients.map((c) => c.mGet([K.round, K.stopRequest, K.stopAt]).catch(() => [])));
    throw new Error(`the network did not stop within 60 s:\n${peers.map((p, i) => `--- ${p.id} (exited: ${p.child.exitCode !== null}; round ${keys[i]![0]}, stop request ${keys[i]![1]}, agreed stop ${keys[i]![2]})\n${p.stderr().split('\n').slice(-30).join('\n')}`).join('\n')}`);
  }
  for (const [i, o] of outcomes.entries()) expect(o?.state, peers[i].stderr()).toBe('done');
  expect(new Set(outcomes.map((o) => o?.checksum)).size).toBe(1);
  const records = await Promise.all(clients.map((c) => c.hGetAll(K.members)));
  for (const r of records) expect(r).toEqual(records[0]);
  expect((JSON.parse(records[0][back]) as MemberRecord).leftAt).toBeUndefined();
}

/**
 * p2, paused in round `killedIn`, is SIGKILLed: the survivors drop it at their deadline and go on
 * together (`whileAway` then checks them, given how much p0 and p1 had said before the kill).
 * Restarted on its own Redis, it learns it was dropped and rejoins, and all end identical.
 */
async function killedThenRejoins(killedIn: number, whileAway: (saidBefore: number[]) => void = () => {}): Promise<void> {
  // p2 may have been dropped (and readmitted) before, on a busy machine: read only what follows.
  const saidBefore = [peers[0].stderr().length, peers[1].stderr().length];
  peers[2].kill('SIGKILL');
  expect(await peers[2].outcome).toBeNull();
  await peers[0].line(/p2 dropped from round/, 60_000, saidBefore[0]);
  const leftAt = (JSON.parse(String(await clients[0].hGet(K.members, 'p2'))) as MemberRecord).leftAt!;
  expect(leftAt).toBeGreaterThanOrEqual(killedIn);
  await untilRound(0, leftAt + 2);
  whileAway(saidBefore);
  peer(2, []);
  const rejoined = Number(/from round (\d+)/.exec(await peers[2].line(/joined through \S+ from round \d+/, REJOIN_BOUND_MS))![1]);
  await untilRound(2, rejoined + 2);
  await endIdentical();
}

/** p2's redis-server killed and restarted empty on its port: p2 stores its data again, rejoins by state copy, and all end identical. */
async function redisRestartedEmpty(): Promise<void> {
  const port = Number(new URL(servers[2].url).port);
  await closeRedis(clients[2]);
  await servers[2].kill();
  servers[2] = await startRedisServer({ port });
  clients[2] = await connectRedis({ url: servers[2].url });
  // The same process goes on: its log from here on tells this rejoin from its first join.
  const seen = peers[2].stderr().length;
  peers[2].kill('SIGUSR2');
  await peers[2].line(/came back without its state; storing its data again and rejoining/, 60_000, seen);
  const rejoined = Number(/from round (\d+)/.exec(await peers[2].line(/joined through \S+ from round \d+/, REJOIN_BOUND_MS, seen))![1]);
  await untilRound(2, rejoined + 2);
  await endIdentical();
}

describe('a peer process killed at each phase of a round', () => {
  it.each(PHASES)('before %s: dropped, the others identical; restarted, it rejoins and ends identical', async (phase) => {
    await killedThenRejoins(await pausedBefore(phase));
  }, CASE_BOUND_MS);
});

describe('the round\'s coordinator (p0, the lowest id) killed at each phase of a round', () => {
  it.each(PHASES)('before %s: the next lowest id coordinates, the others identical; restarted, p0 rejoins and ends identical', async (phase) => {
    const killedIn = await pausedBefore(phase, 0);
    const seen = peers[1].stderr().length; // as above: this drop, not an earlier one
    peers[0].kill('SIGKILL');
    expect(await peers[0].outcome).toBeNull();

    // p1 coordinates the survivors' rounds: it drops p0 (as the exchange's suspect, or when its
    // heartbeat stood still while p1 waited for its view) and both go on together.
    await peers[1].line(/p0 dropped from round/, 60_000, seen);
    const leftAt = (JSON.parse(String(await clients[1].hGet(K.members, 'p0'))) as MemberRecord).leftAt!;
    expect(leftAt).toBeGreaterThanOrEqual(killedIn);
    await untilRound(1, leftAt + 2);
    await untilRound(2, leftAt + 2);

    // Restarted on its own Redis (the founder's, with the network's configuration), it learns
    // it was dropped and rejoins through a member it knew.
    peer(0, []);
    const rejoined = Number(/from round (\d+)/.exec(await peers[0].line(/joined through \S+ from round \d+/, REJOIN_BOUND_MS))![1]);
    await untilRound(0, rejoined + 2);

    await endIdentical('p0');
  }, CASE_BOUND_MS);
});

describe('a peer\'s redis-server killed at a phase and restarted empty', () => {
  it.each<Phase>(['computing', 'exchanging', 'updating', 'verifying'])('before %s: the peer stores its data again, rejoins by state copy, and all end identical', async (phase) => {
    await pausedBefore(phase);
    await redisRestartedEmpty();
  }, CASE_BOUND_MS);
});

/**
 * Exchange 'sharded-step' keeps each slice's optimizer state (here Adam's moments) at the slice's
 * owner only, and its step is taken in the aggregate phase, before the update installs the
 * gathered parameters. Killed around those phases, the owner's state moves with the members:
 * to the survivors when it is dropped (its Redis is up: nothing lost), back when it rejoins.
 * With its Redis gone, its slice's state is lost, said, and the run goes on from zero state there.
 */
describe('exchange sharded-step: a peer killed around its slice\'s step', () => {
  const SHARDED_STEP = ['--exchange', 'sharded-step'];
  const lostLines = () => peers.flatMap((p) => p.stderr().split('\n').filter((l) => /was lost with/.test(l)));

  it.each<Phase>(['aggregating', 'updating'])('before %s: dropped, its slice\'s state goes to the survivors and comes back; all end identical', async (phase) => {
    await killedThenRejoins(await pausedBefore(phase, 2, SHARDED_STEP), (saidBefore) => {
      // Both survivors took over part of p2's slice, fetched from its Redis (they moved state
      // at the joins already: only what they said after the kill counts).
      for (const i of [0, 1]) expect(peers[i].stderr().slice(saidBefore[i])).toMatch(/the members changed; fetched the optimizer state of \d+ elements/);
    });
    expect(lostLines()).toEqual([]);
  }, CASE_BOUND_MS);

  it('its redis-server killed before aggregating: its slice\'s state is lost, said, and all end identical', async () => {
    await pausedBefore('aggregating', 2, SHARDED_STEP);
    await redisRestartedEmpty();
    expect(lostLines().length).toBeGreaterThan(0);
  }, CASE_BOUND_MS);
});
