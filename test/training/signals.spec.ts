import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { startRedisServer } from '../../src/cluster/redis-server.ts';
import { parseTrainingConfig } from '../../src/config/training.ts';
import { K } from '../../src/peer/net/keys.ts';
import { PROTOCOL } from '../../src/peer/plan.ts';
import { closeRedis, connectRedis } from '../../src/tensor/redis-client.ts';
import { NETWORK_FLAGS, spawnCli, spawnPeer, untilRoundOf } from '../../bench/peer-process.ts';

/**
 * Signals to `peerless train`: Ctrl-C (SIGINT) stops the network cleanly after the next round
 * and exits 130; SIGTERM, or a second Ctrl-C, quits at once with 143 or 130 (a second Ctrl-C
 * is not sent here: back-to-back signals merge, so the test exits a process itself); either
 * way no redis-server is left running and no temporary directory is left behind. Then
 * `function serve` on either signal. Real processes; every wait is for an event, bounded only
 * against a hang.
 */
const FLAGS = ['train', '--peers', '2', '--dataset', 'synthetic', '--model', 'cnn', '--width', '0.25', '--batch-size', '32',
  '--batches-per-round', '1', '--rounds', '100000', '--epochs', '1000', '--check-every', '100000', '--validation', '0', '--workers', '1'];

/**
 * The redis-servers a process started: pid and data directory. Redis rewrites its process
 * title, so the directory is read where it runs (it changes into --dir), from /proc.
 */
function childServers(pid: number): { pid: number; dir: string }[] {
  const out = execFileSync('ps', ['-ww', '-o', 'pid=,args=', '--ppid', String(pid)], { encoding: 'utf8' });
  return out.split('\n').filter((l) => l.includes('redis-server')).map((l) => {
    const p = Number(l.trim().split(/\s+/)[0]);
    return { pid: p, dir: readlinkSync(`/proc/${p}/cwd`) };
  });
}

const alive = (pid: number) => { try { process.kill(pid, 0); return true; } catch { return false; } };

/** Waits for a killed process to be gone (the event), bounded against a hang. */
async function gone(pid: number, boundMs = 20_000): Promise<boolean> {
  const end = Date.now() + boundMs;
  while (alive(pid) && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  return !alive(pid);
}

/**
 * A train process with a temporary folder of its own (TMPDIR), so what it leaves behind is
 * found by listing it.
 */
function startTrain(extra: string[] = []) {
  const tmp = mkdtempSync(join(tmpdir(), 'peerless-signals-'));
  const run = spawnCli([...FLAGS, ...extra], { PEERLESS_BACKEND: 'wasm', TMPDIR: tmp });
  const firstRound = run.line(/round 0: loss/).then(() => {});
  const exit = run.exit.then((e) => e.code);
  /**
   * What is left in its temporary folder (then removed with it), but tsx's compile cache: a
   * checkout runs the TypeScript through tsx, the installed package compiled JavaScript.
   */
  const leftovers = () => {
    const left = readdirSync(tmp).filter((f) => !/^tsx-\d+$/.test(f));
    rmSync(tmp, { recursive: true, force: true });
    return left;
  };
  return { child: run.child, firstRound, exit, out: run.stdout, err: run.stderr, leftovers };
}

/** Runs a TypeScript module given as text in a Node process of its own: its exit code and stdout. */
async function runScript(script: string): Promise<{ code: number | null; out: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => { out += d; });
  // 'close': after the last of its output ('exit' may come before it is read).
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  return { code, out };
}

describe('signals to peerless train', () => {
  it('Ctrl-C stops the network after the next round, exit 130; servers stopped, temporary directories removed', async () => {
    const t = startTrain();
    await t.firstRound;
    const servers = childServers(t.child.pid!);
    expect(servers).toHaveLength(2);
    t.child.kill('SIGINT');
    expect(await t.exit, t.err()).toBe(130);
    expect(t.out()).toMatch(/stop requested at round \d+/);
    expect(t.out()).toMatch(/replicas identical: yes/);
    for (const s of servers) {
      expect(s.dir).toMatch(/peerless-redis-/);
      expect(await gone(s.pid)).toBe(true);
      expect(existsSync(s.dir)).toBe(false);
    }
    expect(t.leftovers()).toEqual([]);
  });

  it('SIGTERM quits at once, exit 143: no server left running, no temporary directory left', async () => {
    const t = startTrain(['--tls']);
    await t.firstRound;
    const servers = childServers(t.child.pid!);
    expect(servers).toHaveLength(2);
    t.child.kill('SIGTERM');
    expect(await t.exit, t.err()).toBe(143);
    expect(t.out()).not.toMatch(/Training finished/);
    for (const s of servers) {
      expect(s.dir).toMatch(/peerless-redis-/);
      expect(await gone(s.pid)).toBe(true);
      expect(existsSync(s.dir)).toBe(false);
    }
    // The servers' folders and the run's throwaway CA were in its temporary folder: nothing is left.
    expect(t.leftovers()).toEqual([]);
  });

  it('--min-peers 2: when a peer\'s Redis is killed, the run stops, fails, and says first which peer and why', async () => {
    const t = startTrain(['--min-peers', '2', '--deadline', '5000']);
    await t.firstRound;
    const servers = childServers(t.child.pid!);
    expect(servers).toHaveLength(2);
    process.kill(servers[1].pid, 'SIGKILL');
    expect(await t.exit, t.err()).toBe(1);
    const first = t.out().split('\n').find((l) => l.trim())!;
    expect(first).toMatch(/^Training FAILED: peer-01: .*127\.0\.0\.1:\d+/);
    expect(t.out()).toMatch(/ended with 1 live peer\(s\), below --min-peers 2/);
    expect(await gone(servers[0].pid)).toBe(true);
    // The killed server's folder too: it died on its own, the run still removes it.
    expect(t.leftovers()).toEqual([]);
  });

  it('a process that exits without stopping its servers (a second Ctrl-C) still leaves none behind', async () => {
    // A process that starts a server and leaves at once, as `train` does on a second signal.
    const script = `import { startRedisServer } from ${JSON.stringify(new URL('../../src/cluster/redis-server.ts', import.meta.url).href)};
      const s = await startRedisServer();
      process.stdout.write(JSON.stringify({ pid: s.process.pid, dir: s.dir }) + '\\n');
      process.exit(130);`;
    const { code, out } = await runScript(script);
    expect(code).toBe(130);
    const server = JSON.parse(out) as { pid: number; dir: string };
    expect(await gone(server.pid)).toBe(true);
    expect(existsSync(server.dir)).toBe(false);
  });

  it('a server killed by someone else leaves no directory when the process exits', async () => {
    const script = `import { startRedisServer } from ${JSON.stringify(new URL('../../src/cluster/redis-server.ts', import.meta.url).href)};
      const s = await startRedisServer();
      const died = new Promise((r) => s.process.once('exit', r));
      process.kill(s.process.pid, 'SIGKILL');
      await died;
      process.stdout.write(JSON.stringify({ dir: s.dir }) + '\\n');`;
    const { code, out } = await runScript(script);
    expect(code).toBe(0);
    expect(existsSync((JSON.parse(out) as { dir: string }).dir)).toBe(false);
  });
});

describe('a redis-server killed with kill()', () => {
  it('takes its temporary directory with it (the tests that crash a server left one each)', async () => {
    const s = await startRedisServer();
    expect(existsSync(s.dir)).toBe(true);
    await s.kill();
    expect(s.process.exitCode ?? s.process.signalCode).toBe('SIGKILL');
    expect(existsSync(s.dir)).toBe(false);
  });
});

describe('a redis-server that fails to start', () => {
  it('is refused in one line naming why, and leaves no directory behind', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'peerless-start-'));
    const before = process.env.TMPDIR;
    process.env.TMPDIR = tmp; // where startRedisServer makes the server's directory
    try {
      await expect(startRedisServer({ config: { 'no-such-directive': 'x' } })).rejects.toThrow(/^redis-server on port \d+ exited at start: .*no-such-directive/);
    } finally {
      if (before === undefined) delete process.env.TMPDIR; else process.env.TMPDIR = before;
    }
    expect(readdirSync(tmp)).toEqual([]);
    rmSync(tmp, { recursive: true, force: true });
  });

  it('on a port something else listens on is refused, never taken for the other listener', async () => {
    // A connection to the port succeeded while our server, unable to bind, was about to exit:
    // the other listener was then used as our server.
    const other = createServer((socket) => socket.destroy());
    await new Promise<void>((ok) => other.listen(0, '127.0.0.1', ok));
    const port = (other.address() as AddressInfo).port;
    try {
      await expect(startRedisServer({ port })).rejects.toThrow(new RegExp(`^redis-server on port ${port} exited at start: .*Address already in use`));
    } finally {
      await new Promise((ok) => other.close(ok));
    }
  });
});

describe('signals to peerless peer', () => {
  /** A founding peer on a Redis of the test's, once its first round is done. */
  async function runningPeer() {
    const server = await startRedisServer();
    const client = await connectRedis({ url: server.url });
    const peer = spawnPeer('p0', ['--redis', server.url, '--shard', '0/1', ...NETWORK_FLAGS, '--rounds', '100000']);
    const exit = new Promise<number | null>((resolve) => peer.child.once('close', (c) => resolve(c)));
    await untilRoundOf(client, 1, peer, 180_000);
    return { server, client, peer, exit, close: async () => { peer.kill(); await closeRedis(client); await server.stop(); } };
  }

  it('Ctrl-C leaves at the next round boundary, exit 130, its state kept', async () => {
    const r = await runningPeer();
    try {
      r.peer.kill('SIGINT');
      expect(await r.exit, r.peer.stderr()).toBe(130);
      expect(r.peer.stderr()).toMatch(/p0: leaving at the next round boundary/);
      expect((await r.peer.outcome)?.state).toBe('left');
      expect(Number(await r.client.get(K.round))).toBeGreaterThanOrEqual(1);
    } finally {
      await r.close();
    }
  });

  it('SIGTERM quits at once, exit 143', async () => {
    const r = await runningPeer();
    try {
      r.peer.kill('SIGTERM');
      expect(await r.exit, r.peer.stderr()).toBe(143);
      // It quit without finishing a round or printing an outcome (the others drop it).
      expect((await r.peer.outcome)?.error).toMatch(/^exit 143/);
      expect(r.peer.stderr()).not.toMatch(/leaving at the next round boundary/);
    } finally {
      await r.close();
    }
  });
});

describe('signals to peerless function serve', () => {
  for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    it(`${sig} stops it, exit ${code}`, async () => {
      const run = spawnCli(['function', 'serve', '--port', '0'], { PEERLESS_FUNCTION_TOKEN: 'signals-token' });
      await run.line(/listening on/);
      run.child.kill(sig);
      expect(await run.exit, run.stderr()).toEqual({ code, signal: null });
    });
  }
});

describe('signals to peerless dashboard', () => {
  for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    it(`${sig} stops it, exit ${code}`, async () => {
      // A network's records as a peer keeps them: the plan is what the dashboard attaches to.
      const server = await startRedisServer();
      const client = await connectRedis({ url: server.url });
      try {
        const plan = { config: parseTrainingConfig({ model: { name: 'cnn' } }), roundsPerEpoch: 1, layoutHash: 'h', length: 1, network: 'signals', protocol: PROTOCOL };
        await client.set(K.config, JSON.stringify(plan));
        const run = spawnCli(['dashboard', '--redis', server.url, '--port', '0']);
        await run.line(/dashboard: http/);
        run.child.kill(sig);
        expect((await run.exit).code, run.stderr()).toBe(code);
      } finally {
        await closeRedis(client);
        await server.stop();
      }
    });
  }
});

describe('signals to peerless bench', () => {
  for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    it(`${sig} stops it, exit ${code}: no redis-server left running, no directory left`, async () => {
      const run = spawnCli(['bench', 'round', '--quick', '--no-allreduce', '--params', '60001', '--json']);
      // The event: its first redis-server has started, maybe not yet accepting connections (it
      // has moved into its directory). Bounded only against a hang.
      let servers: { pid: number; dir: string }[] = [];
      const end = Date.now() + 60_000;
      while (servers.length === 0 && Date.now() < end) {
        await new Promise((r) => setTimeout(r, 10));
        try { servers = childServers(run.child.pid!).filter((s) => /peerless-redis-/.test(s.dir)); } catch { /* gone between ps and /proc */ }
      }
      expect(servers.length, run.stderr()).toBeGreaterThan(0);
      run.child.kill(sig);
      expect((await run.exit).code, run.stderr()).toBe(code);
      for (const s of servers) {
        expect(await gone(s.pid)).toBe(true);
        expect(existsSync(s.dir)).toBe(false);
      }
    });
  }
});
