/**
 * What `train --dashboard` costs a run: the same small training run with and without the
 * dashboard, interleaved (with, without, with, ...) so drift on a shared machine falls on
 * both, comparing the median round time of each run. Each run is a `peerless train` process
 * of its own, as a user starts it. The dashboard has no browser attached: the server still
 * keeps and streams every round and status, which is its cost to the run.
 *
 *   npx tsx bench/dashboard-overhead.mts [--runs 5] [--rounds 80] [--json]
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { median } from './stats.ts';

const args = process.argv.slice(2);
const flag = (name: string, dflt: number) => { const i = args.indexOf(name); return i >= 0 ? Number(args[i + 1]) : dflt; };
const runs = flag('--runs', 5), rounds = flag('--rounds', 80);
const BIN = fileURLToPath(new URL('../bin/peerless.js', import.meta.url));
const TRAIN = ['train', '--peers', '2', '--dataset', 'synthetic', '--model', 'cnn', '--width', '0.5', '--batches-per-round', '2', '--rounds', String(rounds), '--seed', '5', '--json'];

/** The median round time of one run, ms (from its summary: training time / rounds). */
async function oneRun(dashboard: boolean): Promise<number> {
  const { stdout } = await promisify(execFile)(process.execPath, [BIN, ...TRAIN, ...(dashboard ? ['--dashboard', '0'] : [])], { maxBuffer: 64 << 20 });
  const s = JSON.parse(stdout) as { trainingMs: number; rounds: number };
  return s.trainingMs / s.rounds;
}

const withMs: number[] = [], withoutMs: number[] = [];
for (let i = 0; i < runs; i++) {
  withMs.push(await oneRun(true));
  withoutMs.push(await oneRun(false));
  process.stderr.write(`run ${i + 1}/${runs}: with ${withMs.at(-1)!.toFixed(1)} ms per round, without ${withoutMs.at(-1)!.toFixed(1)} ms\n`);
}
const report = { benchmark: 'dashboard', runs, rounds, withMsPerRound: median(withMs), withoutMsPerRound: median(withoutMs), overhead: median(withMs) / median(withoutMs) - 1, with: withMs, without: withoutMs };
if (args.includes('--json')) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
else {
  process.stdout.write(`train --dashboard, ${runs} runs each of ${rounds} rounds (2 peers, synthetic, cnn width 0.5), interleaved\n\n`);
  process.stdout.write(`        per round (median of runs)\nwith      ${report.withMsPerRound.toFixed(1)} ms\nwithout   ${report.withoutMsPerRound.toFixed(1)} ms\n\n`);
  process.stdout.write(`overhead  ${(report.overhead * 100).toFixed(1)}% (target: under 2%)\n`);
}
