import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * The logs of a long-running command, as a log collector reads them: `function serve
 * --log-format json` writes one JSON object a line (pino: time, level, message, fields), and
 * `--log-level` decides which answers appear. A real process, real HTTP requests.
 */
const BIN = fileURLToPath(new URL('../../bin/peerless.js', import.meta.url));

async function serve(level: string): Promise<{ lines: Record<string, unknown>[]; url: string; stop(): Promise<void> }> {
  const child = spawn(process.execPath, [BIN, 'function', 'serve', '--port', '0', '--log-format', 'json', '--log-level', level], {
    stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PEERLESS_FUNCTION_TOKEN: 'log-token' },
  });
  let err = '';
  const lines: Record<string, unknown>[] = [];
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr!.on('data', (d) => {
      err += d;
      const parts = err.split('\n');
      err = parts.pop()!;
      for (const p of parts) lines.push(JSON.parse(p) as Record<string, unknown>);
      const up = lines.find((l) => typeof l.url === 'string');
      if (up) resolve(up.url as string);
    });
    child.once('exit', () => reject(new Error(`function serve ended before listening: ${err}`)));
  });
  // 'close': after the last of its log lines ('exit' may come before they are read).
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  return { lines, url, stop: async () => { child.kill('SIGTERM'); await exited; } };
}

describe('function serve --log-format json', () => {
  it('one JSON line per event with time and level; debug shows every answer, info only refusals', async () => {
    for (const level of ['debug', 'info']) {
      const s = await serve(level);
      expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
      expect((await fetch(`${s.url}/function/gradient`, { method: 'POST', body: '{}' })).status).toBe(401);
      await s.stop();
      const answers = s.lines.filter((l) => typeof l.status === 'number');
      expect(s.lines[0]).toMatchObject({ level: 30, msg: expect.stringMatching(/^peerless functions listening on http:\/\/127\.0\.0\.1:\d+/) });
      for (const l of s.lines) expect(Number.isNaN(Date.parse(String(l.time)))).toBe(false);
      expect(answers.map((a) => [a.method, a.path, a.status])).toEqual(level === 'debug'
        ? [['GET', '/healthz', 200], ['POST', '/function/gradient', 401]]
        : [['POST', '/function/gradient', 401]]);
    }
  });
});
