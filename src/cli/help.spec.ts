import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseTrainingConfig } from '../config/training.ts';

// `--help` as a new user reads it: the real CLI in a child process.
const BIN = fileURLToPath(new URL('../../bin/peerless.js', import.meta.url));
const help = (...args: string[]) => new Promise<string>((resolve, reject) => {
  execFile(process.execPath, [BIN, ...args, '--help'], { timeout: 60_000 }, (err, stdout) => (err ? reject(err) : resolve(stdout)));
});
const flat = (s: string) => s.replace(/\s+/g, ' ');

describe('--help', () => {
  it('loads no command\'s code: TensorFlow.js, node-redis and the AWS SDK stay unloaded', async () => {
    // Which packages the CLI resolves, traced by Node's module hooks in the child itself.
    const trace = fileURLToPath(new URL('./import-trace.mjs', import.meta.url));
    const resolved = (...args: string[]) => new Promise<string[]>((resolve, reject) => {
      execFile(process.execPath, ['--import', trace, BIN, ...args], { timeout: 60_000 }, (err, _out, stderr) =>
        (err ? reject(err) : resolve([...stderr.matchAll(/^resolve (\S+)$/gm)].map((m) => m[1]))));
    });
    for (const args of [['--help'], ['train', '--help'], ['--version']]) {
      const packages = await resolved(...args);
      expect(packages, args.join(' ')).toContain('commander');
      for (const heavy of ['@tensorflow/tfjs-core', 'redis', '@aws-sdk/client-lambda', 'echarts']) expect(packages, `${args.join(' ')}: ${heavy}`).not.toContain(heavy);
    }
  });

  it('train shows every training option\'s default, taken from the configuration schema, and how rounds work', async () => {
    const out = flat(await help('train'));
    const d = parseTrainingConfig({ model: { name: 'cnn' } });
    for (const [flag, value] of [['--batch-size <n>', d.batchSize], ['--deadline <ms>', d.deadlineMs], ['--chunk-kib <n>', d.chunkKib],
      ['--check-every <n>', d.checkEvery], ['--exchange <mode>', d.exchange], ['--checkpoint <mode>', d.checkpoint]] as const) {
      expect(out, flag).toMatch(new RegExp(`${flag.replace(/[<>]/g, '.')} (?:(?! --).)*\\(default: ${value}\\)`));
    }
    expect(out).toContain('--rounds N runs N rounds, each taking max(1, batches in the shard x --epochs / N) batches');
    expect(out).toContain('Examples:');
  });

  it('function serve says what callers need and shows examples', async () => {
    const out = flat(await help('function', 'serve'));
    expect(out).toContain('--allow-redis <list>');
    expect(out).toContain('Authorization: Bearer $PEERLESS_FUNCTION_TOKEN');
  });
});

describe('a mistake in the flags or the configuration', () => {
  const run = (...args: string[]) => new Promise<{ code: number | null; stderr: string }>((resolve) => {
    execFile(process.execPath, [BIN, ...args], { timeout: 60_000 }, (err, _out, stderr) => resolve({ code: err ? (err as { code?: number }).code ?? null : 0, stderr }));
  });

  it('an unknown flag, a wrong type and an out-of-range value: one line naming it, exit code 2', async () => {
    const unknown = await run('train', '--batchsize', '3');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr.split('\n')[0]).toBe("error: unknown option '--batchsize'");
    const wrongType = await run('train', '--batch-size', 'many');
    expect(wrongType.code).toBe(2);
    expect(wrongType.stderr.trim()).toMatch(/^peerless: invalid training configuration: batchSize: .*number/);
    const outOfRange = await run('train', '--test-fraction', '2');
    expect(outOfRange.code).toBe(2);
    expect(outOfRange.stderr.trim()).toMatch(/^peerless: invalid training configuration: testFraction: Too big/);
  });
});
