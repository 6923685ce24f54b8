import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { spawnCli } from '../../bench/peer-process.ts';

/**
 * Crash everything: SIGKILL a `train --data-dir` run and every redis-server it started in the
 * middle of the run, then `--resume` it. With exact sums, recycled round keys that refuse a
 * finished round's gradients, and an update guarded by the round marker, the resumed run ends
 * with the uninterrupted run's checksum at 3 batches per round: no round counted twice, no
 * gradient counted twice. Real processes; waits are for a progress line, bounded.
 */
const FLAGS = ['train', '--peers', '2', '--dataset', 'synthetic', '--model', 'cnn', '--width', '0.25', '--batch-size', '32',
  '--batches-per-round', '3', '--rounds', '30', '--epochs', '1000', '--check-every', '100000', '--validation', '0', '--workers', '1', '--seed', '4', '--json'];
const dirs: string[] = [];
afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

interface Run { exit: Promise<number | null>; stdout: () => string; stderr: () => string; pid: number }
function train(args: string[]): Run {
  const run = spawnCli([...FLAGS, ...args], { PEERLESS_BACKEND: 'wasm' });
  return { exit: run.exit.then((e) => e.code), stdout: run.stdout, stderr: run.stderr, pid: run.child.pid! };
}

/** Waits until the run's metrics file has a line for round `round` (the event), bounded. */
async function waitForRound(r: Run, metrics: string, round: number, boundMs = 180_000): Promise<void> {
  const end = Date.now() + boundMs;
  const reached = () => existsSync(metrics) && readFileSync(metrics, 'utf8').split('\n').some((l) => l && (JSON.parse(l) as { round: number }).round >= round);
  while (!reached()) {
    if (Date.now() > end) throw new Error(`round ${round} never finished: ${r.stderr()}`);
    await new Promise((res) => setTimeout(res, 20));
  }
}

const summary = (r: Run) => JSON.parse(r.stdout()) as { checksums: string[]; identical: boolean; rounds: number };

/** peer-00's last metrics line of each round (a resumed run appends to the same file). */
function roundsOf(file: string): Map<number, { checksum: string }> {
  const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { type: string; peer?: string; round: number; checksum: string });
  return new Map(lines.filter((m) => m.type === 'round' && m.peer === 'peer-00').map((m) => [m.round, m]));
}

/** For a failure's message: the first round whose checksum differs between the two runs. */
function firstDivergence(cleanFile: string, crashedFile: string): string {
  const clean = roundsOf(cleanFile), crashed = roundsOf(crashedFile);
  for (const [round, m] of [...clean].sort((a, b) => a[0] - b[0])) {
    const other = crashed.get(round);
    if (other?.checksum !== m.checksum) return `first round whose checksum differs: ${round}\nclean:   ${JSON.stringify(m)}\ncrashed: ${JSON.stringify(other ?? null)}`;
  }
  return 'every round both runs logged has the same checksum';
}

describe('SIGKILL of every process of a run, then --resume', () => {
  it('ends with the uninterrupted run\'s checksum (3 batches per round)', async () => {
    const clean = mkdtempSync(join(tmpdir(), 'peerless-clean-'));
    const crashed = mkdtempSync(join(tmpdir(), 'peerless-crashed-'));
    dirs.push(clean, crashed);

    const cleanMetrics = join(clean, 'rounds.jsonl');
    const whole = train(['--data-dir', clean, '--metrics', cleanMetrics]);
    expect(await whole.exit, whole.stderr()).toBe(0);
    const reference = summary(whole);
    expect(reference.identical).toBe(true);

    const metrics = join(crashed, 'rounds.jsonl');
    const first = train(['--data-dir', crashed, '--metrics', metrics]);
    await waitForRound(first, metrics, 10);
    // Everything at once: the orchestrator (and its peers and functions) and its redis-servers.
    const servers = execFileSync('ps', ['-o', 'pid=,args=', '--ppid', String(first.pid)], { encoding: 'utf8' })
      .split('\n').filter((l) => l.includes('redis-server')).map((l) => Number(l.trim().split(/\s+/)[0]));
    expect(servers).toHaveLength(2);
    for (const pid of [first.pid, ...servers]) process.kill(pid, 'SIGKILL');
    await first.exit;

    const resumed = train(['--data-dir', crashed, '--resume', '--metrics', metrics]);
    expect(await resumed.exit, resumed.stderr()).toBe(0);
    const end = summary(resumed);
    expect(end.identical).toBe(true);
    expect(end.rounds).toBe(reference.rounds);
    expect(end.checksums[0], firstDivergence(cleanMetrics, metrics)).toBe(reference.checksums[0]);
    // Three runs of `train` (60-120 s beside one other suite): bounded against a hang, past the
    // suite's 600 s for a machine loaded more than that.
  }, 1_200_000);
});
