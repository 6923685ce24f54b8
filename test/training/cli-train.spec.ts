import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * The command a new user types first, as they type it: `peerless train --peers 2 --rounds 20`
 * on the embedded real MNIST, with no other flag. It once ran one round and ended at 16%
 * (the rounds were capped by the default epochs); an explicit round count must run that many
 * rounds and train.
 */
const BIN = fileURLToPath(new URL('../../bin/peerless.js', import.meta.url));

function train(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, 'train', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
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
