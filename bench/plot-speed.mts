/**
 * How long `peerless plot` takes on a long run's metrics file (the dashboard issue's target:
 * a 10,000-round file in under 2 s): a metrics file of ROUNDS rounds of 2 peers, as `train
 * --metrics` writes it (phase times and bytes every round, validation every 10 rounds),
 * plotted by the CLI in a process of its own, from this checkout through tsx and, when `npm
 * run build` has run, as the installed package runs it. Median of 3 runs each, after one to
 * warm the file cache.
 *
 *   npx tsx bench/plot-speed.mts [--rounds N] [--json]
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { median } from './stats.ts';

const args = process.argv.slice(2);
const at = args.indexOf('--rounds');
const rounds = at >= 0 ? Number(args[at + 1]) : 10_000;
if (!Number.isInteger(rounds) || rounds < 1) {
  process.stderr.write(`bench/plot-speed: --rounds must be a positive integer, got ${args[at + 1]}\n`);
  process.exit(2);
}
const json = args.includes('--json');
const RUNS = 3;

const dir = mkdtempSync(join(tmpdir(), 'peerless-plot-speed-'));
try {
  const file = join(dir, 'rounds.jsonl');
  const lines = [JSON.stringify({ type: 'config', at: '2026-12-01T00:00:00.000Z', resume: false, config: { model: { name: 'cnn' } } })];
  for (let r = 0; r < rounds; r++) {
    for (const peer of ['peer-00', 'peer-01']) {
      lines.push(JSON.stringify({
        type: 'round', at: new Date(Date.UTC(2026, 11, 1) + r * 100).toISOString(), peer, round: r,
        loss: 2.3 * Math.exp(-r / (rounds / 5)) + ((r * 7919 + peer.length) % 100) / 2000,
        computeMs: 90 + (r % 17), averageMs: 3, exchangeMs: 20 + (r % 5), aggregateMs: 4, updateMs: 2, verifyMs: 1, checkMs: r % 10 === 0 ? 40 : 0,
        bytesSent: 1_800_000, bytesReceived: 1_800_000,
        ...(r % 10 === 0 ? { validationAccuracy: Math.min(0.99, 0.1 + r / rounds) } : {}),
      }));
    }
  }
  writeFileSync(file, lines.join('\n'));
  const entries: [string, string][] = [['checkout (tsx)', fileURLToPath(new URL('../bin/peerless.js', import.meta.url))]];
  const built = fileURLToPath(new URL('../dist/src/cli/main.js', import.meta.url));
  if (existsSync(built)) entries.push(['built (dist/)', built]);
  const rows = entries.map(([how, entry]) => {
    const run = () => execFileSync(process.execPath, [entry, 'plot', file, '--out', join(dir, 'out.svg')], { stdio: 'ignore' });
    run();
    const ms: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const t0 = performance.now();
      run();
      ms.push(performance.now() - t0);
    }
    return { how, rounds, peers: 2, medianMs: median(ms) };
  });
  if (json) process.stdout.write(`${JSON.stringify({ benchmark: 'plot-speed', rows }, null, 2)}\n`);
  else {
    process.stdout.write(`peerless plot on a ${rounds.toLocaleString()}-round, 2-peer metrics file (median of ${RUNS}, whole process; target under 2 s)\n`);
    for (const r of rows) process.stdout.write(`  ${r.how.padEnd(16)} ${(r.medianMs / 1000).toFixed(2)} s\n`);
    if (rows.length === 1) process.stdout.write('  (no dist/: `npm run build` adds the installed package\'s figure)\n');
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
