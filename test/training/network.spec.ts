import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { startRedisServer, type RedisServer } from '../../src/cluster/redis-server.ts';
import { K } from '../../src/peer/net/keys.ts';
import type { MemberRecord } from '../../src/peer/net/membership.ts';
import { closeRedis, connectRedis, type Redis } from '../../src/tensor/redis-client.ts';
import { networkStatus } from '../../src/cli/commands/status.ts';
import { stopNetwork } from '../../src/cli/commands/stop.ts';
import { credentialsFor } from '../../src/peer/net/access.ts';
import { matchAfter, NETWORK_FLAGS, roundOf, spawnPeer, untilRoundOf, type PeerProcess } from '../../bench/peer-process.ts';

/**
 * Networks of `peerless peer` processes, one per (simulated) machine, each with its own
 * real redis-server on loopback and its own local function pool: what a multi-host run
 * looks like, so a peer can be killed with SIGKILL and restarted for real.
 *
 * Every wait is for an event (a log line of a peer, a round marker in a peer's Redis); the
 * time limits only bound a hang. Nothing asserts how far a run got by some moment.
 *
 * As deployed: each Redis has a password of its own (its owner's), and the peers share a
 * network secret, so every exchange, join, rejoin and repair goes through the ACL users.
 */
const SECRET = 'network-spec-secret';
const BIN = fileURLToPath(new URL('../../bin/peerless.js', import.meta.url));
let servers: RedisServer[] = [];
let owners: string[] = [];
let peers: PeerProcess[] = [];
let clients: Redis[] = [];

afterEach(async () => {
  for (const p of peers) p?.kill();
  await Promise.all(clients.map(closeRedis));
  await Promise.all(servers.map((s) => s.stop()));
  servers = []; peers = []; clients = [];
});

async function network(n: number): Promise<void> {
  owners = Array.from({ length: n }, (_, i) => `owner-${i}-${Math.random().toString(36).slice(2)}`);
  servers = await Promise.all(owners.map((password) => startRedisServer({ password })));
  clients = await Promise.all(servers.map((s, i) => connectRedis({ url: s.url, password: owners[i] })));
}

/** Peer i's own Redis as it enters it: with its owner's password. */
const ownUrl = (i: number) => servers[i].url.replace('redis://', `redis://:${owners[i]}@`);

const round = (i: number) => roundOf(clients[i]);
/** Waits for peer i's round marker (its Redis) to reach r: an event, bounded against a hang. */
const untilRound = (i: number, r: number, boundMs = 180_000) => untilRoundOf(clients[i], r, peers[i], boundMs);

const record = async (on: number, id: string) => JSON.parse(String(await clients[on].hGet(K.members, id))) as MemberRecord;

function peer(i: number, extra: string[], id = `p${i}`): PeerProcess {
  const p = spawnPeer(id, ['--redis', ownUrl(i), '--password', SECRET, '--shard', `${i}/${servers.length}`, ...extra]);
  peers[i] = p;
  return p;
}

const founder = (deadline: number) => peer(0, [...NETWORK_FLAGS, '--rounds', '100000', '--deadline', String(deadline)]);
const joiner = (i: number) => peer(i, ['--bootstrap', servers[0].url]);
const joined = (i: number) => peers[i].line(/joined through/).then((l) => Number(/from round (\d+)/.exec(l)![1]));

/**
 * The deadline of the pause tests, which wait it out once (the drop): at 4 s, its function
 * deadline (half) left a loaded machine's calls little room, and a peer that sat a round out
 * unplanned ended its run otherwise than the test says.
 */
const PAUSE_DEADLINE_MS = 10_000;

/** A network of three in which p2, paused (SIGSTOP) past the deadline, was dropped by the others. */
async function pauseP2UntilDropped(): Promise<void> {
  await network(3);
  founder(PAUSE_DEADLINE_MS);
  joiner(1);
  joiner(2);
  const from = await joined(2);
  await untilRound(2, from + 2);
  const seen = peers[0].stderr().length; // this drop, not one an earlier slow round caused
  peers[2].child.kill('SIGSTOP');
  // The others drop it at their deadline and go on (an event in p0's log).
  await peers[0].line(/p2 dropped from round/, undefined, seen);
}

async function stopAndCollect() {
  await stopNetwork(servers[0].url, SECRET, undefined, true);
  return Promise.all(peers.map((p) => p.outcome));
}

describe('a network of peer processes', () => {
  it('peers that join one bootstrap at the same moment all learn of each other, with nothing to repair', async () => {
    await network(3);
    founder(30_000);
    joiner(1);
    joiner(2);
    const [from1, from2] = await Promise.all([joined(1), joined(2)]);
    // The network secret opens no peer's Redis as its owner, and another peer's user cannot
    // touch a peer's parameters, records or server.
    await expect(connectRedis({ url: servers[0].url, password: SECRET })).rejects.toThrow(/refused the credentials/);
    const other = await connectRedis({ url: servers[0].url, ...credentialsFor('peers', SECRET) });
    try {
      await expect(other.sendCommand(['PL.SETRANGE', K.params, '0', Buffer.alloc(4)])).rejects.toThrow(/NOPERM/);
      await expect(other.sendCommand(['PL.SCALE', K.params, '0'])).rejects.toThrow(/NOPERM/);
      await expect(other.set(K.round, '999999')).rejects.toThrow(/NOPERM/);
      await expect(other.sendCommand(['CONFIG', 'SET', 'maxmemory', '1mb'])).rejects.toThrow(/NOPERM/);
      await expect(other.sendCommand(['FLUSHALL'])).rejects.toThrow(/NOPERM/);
    } finally {
      await closeRedis(other);
    }
    await untilRound(0, Math.max(from1, from2) + 3);
    const outcomes = await stopAndCollect();
    for (const [i, o] of outcomes.entries()) expect(o?.state, peers[i].stderr()).toBe('done');
    expect(new Set(outcomes.map((o) => o?.checksum)).size).toBe(1);
    // One membership: every peer holds the same records, and nobody ever repaired or dropped.
    const views = await Promise.all(clients.map((c) => c.hGetAll(K.members)));
    for (const v of views) expect(v).toEqual(views[0]);
    expect(Object.keys(views[0]).sort()).toEqual(['p0', 'p1', 'p2']);
    for (const p of peers) expect(p.stderr()).not.toMatch(/repairing|dropped|missed the/);
  });

  it('a peer killed with SIGKILL is dropped at the deadline; the others finish identical', async () => {
    await network(3);
    founder(8_000);
    joiner(1);
    joiner(2);
    const from = await joined(2);
    await untilRound(2, from + 3);
    const seen = peers[0].stderr().length;
    peers[2].kill('SIGKILL');
    await peers[2].outcome;
    const killedAt = await round(2);
    // The survivors drop it (an event in their log from the kill on), go on without it, then stop cleanly.
    await peers[0].line(/p2 dropped from round/, undefined, seen);
    const leftAt = (await record(0, 'p2')).leftAt!;
    await untilRound(0, leftAt + 2);
    const [a, b] = await stopAndCollect();
    expect(a?.state, peers[0].stderr()).toBe('done');
    expect(b?.state, `${peers[1].stderr()} ${b?.error}`).toBe('done');
    expect(a?.checksum).toBe(b?.checksum);
    // It was alive through round killedAt - 1, so it cannot have been dropped before killedAt.
    expect(leftAt).toBeGreaterThanOrEqual(killedAt);
    expect((await record(1, 'p2')).leftAt).toBe(leftAt);
  });

  it('a peer paused (SIGSTOP) past the deadline is dropped; resumed, it finds out, rejoins and ends identical', async () => {
    await pauseP2UntilDropped();
    const leftAt = (await record(0, 'p2')).leftAt!;
    await untilRound(0, leftAt + 2);
    const mark = peers[2].stderr().length;
    peers[2].child.kill('SIGCONT');
    // Resumed, it learns it was dropped and asks again (events in its log after the pause).
    const rejoined = (await matchAfter(peers[2], mark, /was dropped from the network at round \d+[^\n]*asking to rejoin[\s\S]*?joined through \S+ from round (\d+)/))[1];
    await untilRound(2, Number(rejoined) + 2);
    const outcomes = await stopAndCollect();
    for (const [i, o] of outcomes.entries()) expect(o?.state, peers[i].stderr()).toBe('done');
    expect(new Set(outcomes.map((o) => o?.checksum)).size).toBe(1);
    const records = await Promise.all(clients.map((c) => c.hGetAll(K.members)));
    for (const r of records) expect(r).toEqual(records[0]);
    expect(JSON.parse(records[0].p2).leftAt).toBeUndefined();
  });

  it('a dropped peer whose own Redis dies while it asks to rejoin ends naming that Redis, not the step it broke', async () => {
    // A CI run under load: the peer, dropped, was asking to rejoin when its Redis was killed,
    // and ended saying only "out of the network ...: The client is offline".
    await pauseP2UntilDropped();
    // Nobody admits it while the others are paused: it keeps asking.
    peers[0].child.kill('SIGSTOP');
    peers[1].child.kill('SIGSTOP');
    const mark = peers[2].stderr().length;
    peers[2].child.kill('SIGCONT');
    await matchAfter(peers[2], mark, /asking to rejoin/);
    const port = new URL(servers[2].url).port;
    await servers[2].kill();
    const outcome = await peers[2].outcome;
    expect(outcome?.state, peers[2].stderr()).toBe('failed');
    expect(outcome?.error).toMatch(new RegExp(`^peer p2: its Redis at \\S*127\\.0\\.0\\.1:${port}\\S* is unreachable \\(.+\\); gave up after ${PAUSE_DEADLINE_MS} ms$`));
    // The address, never its password, in the error and in the log.
    expect(outcome?.error).not.toContain(owners[2]);
    expect(peers[2].stderr()).not.toContain(owners[2]);
    peers[0].child.kill('SIGCONT');
    peers[1].child.kill('SIGCONT');
  });

  it('a peer that joins mid-run catches up and ends identical', async () => {
    await network(3);
    founder(30_000);
    joiner(1);
    await joined(1);
    await untilRound(0, 6);
    joiner(2);
    const from = await joined(2);
    // It asked after round 6 was done, so it is admitted at a later round boundary.
    expect(from).toBeGreaterThanOrEqual(7);
    await untilRound(2, from + 3);
    // `peerless status` from any peer's Redis sees all three, active, with their state.
    const status = await networkStatus(servers[1].url, SECRET, true);
    expect(status.map((r) => [r.id, r.member, r.reachable])).toEqual([['p0', 'active', true], ['p1', 'active', true], ['p2', 'active', true]]);
    for (const r of status) expect(r.state?.round).toBeGreaterThanOrEqual(from);
    // `peerless status --watch --json`: a reading a line, each newer than the last, until Ctrl-C.
    const watch = spawn(process.execPath, [BIN, 'status', '--redis', servers[1].url, '--password', SECRET, '--watch', '0.2', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const readings: { at: string; peers: { id: string; state: { round: number } | null }[] }[] = [];
    await new Promise<void>((resolve, reject) => {
      let buf = '';
      const timer = setTimeout(() => reject(new Error(`status --watch: no newer round within 60 s: ${buf}`)), 60_000);
      watch.stdout.on('data', (d) => {
        buf += d;
        const lines = buf.split('\n');
        buf = lines.pop()!;
        for (const l of lines) readings.push(JSON.parse(l) as (typeof readings)[number]);
        const roundOf0 = (r: (typeof readings)[number]) => r.peers.find((p) => p.id === 'p0')?.state?.round ?? -1;
        if (readings.length >= 2 && roundOf0(readings.at(-1)!) > roundOf0(readings[0]!)) { clearTimeout(timer); resolve(); }
      });
    });
    const exited = new Promise<number | null>((r) => watch.once('close', (code) => r(code)));
    watch.kill('SIGINT');
    expect(await exited).toBe(0);
    expect(readings.every((r, i) => i === 0 || r.at >= readings[i - 1]!.at)).toBe(true);
    const outcomes = await stopAndCollect();
    for (const [i, o] of outcomes.entries()) expect(o?.state, peers[i].stderr()).toBe('done');
    expect(new Set(outcomes.map((o) => o?.checksum)).size).toBe(1);
    expect((await record(0, 'p2')).fromRound).toBe(from);
    for (const p of peers) expect(p.stderr()).not.toMatch(/repairing/);
  });

  it('a restarted peer process resumes from the state in its Redis', async () => {
    await network(3);
    founder(60_000);
    joiner(1);
    joiner(2);
    const from = Math.max(await joined(1), await joined(2));
    await untilRound(1, from + 3);
    peers[1].kill('SIGKILL');
    await peers[1].outcome;
    const at = await round(1);
    // Same id, same Redis: no bootstrap needed, the peer resumes from its own state.
    peer(1, []);
    const resumed = Number(/resumed at round (\d+)/.exec(await peers[1].line(/resumed at round/))![1]);
    expect([at - 1, at]).toContain(resumed);
    await untilRound(1, at + 3);
    const outcomes = await stopAndCollect();
    for (const [i, o] of outcomes.entries()) expect(o?.state, peers[i].stderr()).toBe('done');
    expect(new Set(outcomes.map((o) => o?.checksum)).size).toBe(1);
    // Nobody was dropped: the restart came back within the deadline.
    for (const c of clients) {
      const members = Object.values(await c.hGetAll(K.members)).map((v) => JSON.parse(String(v)) as MemberRecord);
      expect(members.filter((m) => m.leftAt !== undefined)).toEqual([]);
    }
  });
});
