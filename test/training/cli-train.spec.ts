import { describe, expect, it } from 'vitest';
import { spawnCli } from '../../bench/peer-process.ts';

/**
 * The command a new user types first, as they type it: `peerless train --peers 2 --rounds 20`
 * on the embedded real MNIST, with no other flag. It once ran one round and ended at 16%
 * (the rounds were capped by the default epochs); an explicit round count must run that many
 * rounds and train.
 */
async function train(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const run = spawnCli(['train', ...args]);
  const { code } = await run.exit;
  return { code, stdout: run.stdout(), stderr: run.stderr() };
}

describe('peerless train with the defaults', () => {
  it('--peers 2 --rounds 20 runs 20 rounds on real MNIST and reaches over 90% test accuracy (90.79% on wasm and native alike)', async () => {
    const { code, stdout, stderr } = await train(['--peers', '2', '--rounds', '20', '--json']);
    expect(code, stderr).toBe(0);
    const summary = JSON.parse(stdout) as { rounds: number; identical: boolean; test: { source: string; accuracy: number } };
    expect(summary.rounds).toBe(20);
    expect(summary.identical).toBe(true);
    expect(summary.test.source).toBe('real MNIST');
    expect(summary.test.accuracy).toBeGreaterThan(0.9);
  }, 600_000);
});
