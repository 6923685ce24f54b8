/**
 * How fast the CLI answers `--help` and `--version`, as an installed package runs it: the
 * compiled JavaScript (`npm run build` first; dist/src/cli/main.js is what bin/peerless.js
 * loads from a package), and from this checkout through tsx, side by side. Median of 5 runs
 * each, after one to warm the file cache. Target (packaging issue): under 300 ms built.
 *
 *   npm run build && npx tsx bench/startup.mts [--json]
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const RUNS = 5;
const built = fileURLToPath(new URL('../dist/src/cli/main.js', import.meta.url));
const checkout = fileURLToPath(new URL('../bin/peerless.js', import.meta.url));
if (!existsSync(built)) {
  process.stderr.write('bench/startup: no dist/ (run npm run build first)\n');
  process.exit(2);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function time(entry: string, args: string[]): number {
  execFileSync(process.execPath, [entry, ...args], { stdio: 'ignore' });
  const ms: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    execFileSync(process.execPath, [entry, ...args], { stdio: 'ignore' });
    ms.push(performance.now() - t0);
  }
  return median(ms);
}

/** Node itself, starting and exiting: the floor under every row (it moves with the machine's load). */
const bareNodeMs = (() => {
  const ms: number[] = [];
  for (let i = 0; i <= RUNS; i++) {
    const t0 = performance.now();
    execFileSync(process.execPath, ['-e', ''], { stdio: 'ignore' });
    if (i > 0) ms.push(performance.now() - t0);
  }
  return median(ms);
})();
const rows = [['--help'], ['--version'], ['train', '--help'], ['peer', '--help']].map((args) => {
  const builtMs = time(built, args), checkoutMs = time(checkout, args);
  return { command: `peerless ${args.join(' ')}`, builtMs, builtOverNodeMs: builtMs - bareNodeMs, checkoutMs, checkoutOverBuilt: checkoutMs / builtMs };
});
if (process.argv.includes('--json')) {
  process.stdout.write(`${JSON.stringify({ runs: RUNS, targetMs: 300, bareNodeMs, rows }, null, 2)}\n`);
} else {
  const w = Math.max(...rows.map((r) => r.command.length));
  process.stdout.write(`${'command'.padEnd(w)}  built (package)  of it, past node  checkout (tsx)  checkout/built\n`);
  for (const r of rows) {
    process.stdout.write(`${r.command.padEnd(w)}  ${`${r.builtMs.toFixed(0)} ms`.padStart(15)}  ${`${r.builtOverNodeMs.toFixed(0)} ms`.padStart(16)}  ${`${r.checkoutMs.toFixed(0)} ms`.padStart(14)}  ${`${r.checkoutOverBuilt.toFixed(1)}x`.padStart(14)}\n`);
  }
  process.stdout.write(`Median of ${RUNS} runs each; node alone (node -e '') took ${bareNodeMs.toFixed(0)} ms. Target: under 300 ms built (${rows.every((r) => r.builtMs < 300) ? 'met' : 'not met'}).\n`);
}
