/**
 * Starts serverless-offline (serverless@3 + serverless-offline@13) as a child process: a
 * real implementation of Lambda's Invoke API on a loopback port, running the packaged zip.
 * Used by the AWS Lambda platform tests; every start must be paired with stop().
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../src/cluster/redis-server.ts';

export interface OfflineLambda {
  /** The Invoke API endpoint, for AwsLambdaPlatform's `endpoint`. */
  endpoint: string;
  /** Everything the child printed so far (for failure messages). */
  logs(): string;
  stop(): Promise<void>;
}

const here = dirname(fileURLToPath(import.meta.url));

/** serverless v3's CLI script, or undefined when the package is not installed. */
export function serverlessCli(): string | undefined {
  try {
    return join(dirname(createRequire(import.meta.url).resolve('serverless/package.json')), 'bin', 'serverless.js');
  } catch {
    return undefined;
  }
}

/** Keep serverless v3 from phoning home: no telemetry, notifications or update checks. */
export const OFFLINE_ENV: Record<string, string> = {
  SLS_TELEMETRY_DISABLED: '1',
  SLS_TRACKING_DISABLED: '1',
  SLS_NOTIFICATIONS_MODE: 'off',
  SLS_DEPRECATION_DISABLE: '*',
  SLS_INTERACTIVE_SETUP_DISABLE: '1',
  CI: '1',
};

/**
 * `service`: a serverless.yml to run instead of this harness's (the one `function package`
 * generates), with the offline plugin added; `env`: variables it resolves (${env:...}).
 */
export async function startOfflineLambda(opts: { zipPath: string; startTimeoutMs?: number; service?: string; env?: Record<string, string> }): Promise<OfflineLambda> {
  const cli = serverlessCli();
  if (!cli) throw new Error('serverless is not installed (devDependency serverless@3)');
  const dir = mkdtempSync(join(tmpdir(), 'peerless-sls-'));
  if (opts.service) writeFileSync(join(dir, 'serverless.yml'), `${readFileSync(opts.service, 'utf8')}\nplugins:\n  - serverless-offline\n`);
  else copyFileSync(join(here, 'serverless.yml'), join(dir, 'serverless.yml'));
  copyFileSync(opts.zipPath, join(dir, 'peerless-function.zip'));

  const [lambdaPort, httpPort, websocketPort, albPort] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
  const args = [
    cli, 'offline', 'start', '--host', '127.0.0.1', '--noSponsor',
    '--lambdaPort', String(lambdaPort), '--httpPort', String(httpPort),
    '--websocketPort', String(websocketPort), '--albPort', String(albPort),
  ];
  const child = spawn(process.execPath, args, {
    cwd: dir,
    env: { ...process.env, ...OFFLINE_ENV, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (d) => { output += d; });
  child.stderr?.on('data', (d) => { output += d; });
  // Never outlive the test process, even when afterAll does not run.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);

  const stop = async () => {
    process.removeListener('exit', killOnExit);
    await terminate(child);
    rmSync(dir, { recursive: true, force: true });
  };

  const endpoint = `http://127.0.0.1:${lambdaPort}`;
  try {
    await waitFor(() => output.includes(`listening on ${endpoint}`), child, opts.startTimeoutMs ?? 60_000);
  } catch (err) {
    await stop();
    throw new Error(`serverless-offline did not start: ${(err as Error).message}\n${output.slice(-2000)}`);
  }
  return { endpoint, logs: () => output, stop };
}

function waitFor(ready: () => boolean, child: ChildProcess, timeoutMs: number): Promise<void> {
  return new Promise((ok, fail) => {
    const t0 = Date.now();
    const timer = setInterval(() => {
      if (ready()) { clearInterval(timer); ok(); return; }
      if (child.exitCode !== null || child.signalCode !== null) {
        clearInterval(timer);
        fail(new Error(`it exited (${child.exitCode ?? child.signalCode})`));
      } else if (Date.now() - t0 > timeoutMs) {
        clearInterval(timer);
        fail(new Error(`no "listening" line within ${timeoutMs} ms`));
      }
    }, 50);
  });
}

/** SIGTERM, then SIGKILL if it lingers: its worker threads must not keep ports open. */
async function terminate(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((ok) => child.once('exit', () => ok()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}
