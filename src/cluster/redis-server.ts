import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureModuleBuilt } from './module-path.ts';
import type { TlsFiles } from './tls.ts';

export interface RedisServerOptions {
  /** Port on 127.0.0.1; a free one is chosen when omitted. */
  port?: number;
  /** Data directory (RDB/AOF); a fresh temporary one when omitted, removed on stop. */
  dir?: string;
  password?: string;
  /** Load the peerless module (default true). */
  loadModule?: boolean;
  /** Extra `--name value` arguments, e.g. { appendonly: 'yes' }. */
  config?: Record<string, string>;
  /**
   * Own process group, so a Ctrl-C in the terminal reaches the orchestrator, which then
   * stops the server itself after a clean end of the round (default false).
   */
  detached?: boolean;
  /** redis-server binary (default: `redis-server` on PATH). */
  binary?: string;
  /**
   * The address to bind and reach it at (default 127.0.0.1). Another address needs a
   * password: protected mode stays on.
   */
  host?: string;
  /** A command the server runs under, e.g. `ip netns exec NS` for a test host in a network namespace. */
  wrapper?: string[];
  /** Serve TLS only (rediss://) with these PEM files; clients need no certificate of their own. */
  tls?: TlsFiles;
}

export interface RedisServer {
  readonly host: string;
  readonly port: number;
  readonly url: string;
  readonly dir: string;
  readonly process: ChildProcess;
  /** Stops the server (SIGTERM, so it saves if configured to) and removes a temporary dir. */
  stop(): Promise<void>;
  /**
   * SIGKILL: the crash case. A temporary dir goes with it (no name outside this object can
   * reach it again); pass `dir` to keep what a crashed server wrote.
   */
  kill(): Promise<void>;
}

/**
 * Servers this process started and has not stopped yet, and the temporary directories it
 * made for them and has not removed. If the process exits without stopping them (a second
 * Ctrl-C, process.exit on an error), the servers are killed and the directories removed on
 * the way out, also those of servers that died on their own, so nothing is left orphaned.
 */
const live = new Set<ChildProcess>();
const ownDirs = new Set<string>();
process.once('exit', () => {
  for (const child of live) {
    try { child.kill('SIGKILL'); } catch { /* already gone */ }
  }
  for (const dir of ownDirs) removeDir(dir);
});

/**
 * Best effort, never a throw: in the exit handler a throw would skip the other directories and
 * replace the exit code. A server SIGKILLed a moment ago may still be writing (ENOTEMPTY): retried.
 */
function removeDir(dir: string): void {
  try {
    rmSync(dir, { recursive: true, force: true, maxRetries: 3, retryDelay: 50 });
    ownDirs.delete(dir);
  } catch {
    // Left behind, and still listed: the exit handler tries once more.
  }
}

/** Asks the OS for a free loopback port. */
export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolvePort(port));
    });
  });
}

/**
 * Starts a real `redis-server` on loopback with the peerless module loaded, and waits until
 * it accepts connections. Used by `peerless train` and by the tests.
 */
export async function startRedisServer(opts: RedisServerOptions = {}): Promise<RedisServer> {
  // A free port is free when asked, not when the server binds it: another process (a test
  // file running beside, an outgoing connection) may take it between. Then another port.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(opts, opts.port ?? (await freePort()));
    } catch (err) {
      if (opts.port !== undefined || attempt >= 5 || !(err instanceof PortTakenError)) throw err;
    }
  }
}

/** The server exited at start because its port was taken meanwhile. */
class PortTakenError extends Error {}

async function startOnce(opts: RedisServerOptions, port: number): Promise<RedisServer> {
  const host = opts.host ?? '127.0.0.1';
  if (host !== '127.0.0.1' && !opts.password) throw new Error(`redis-server on ${host}: an address other than loopback needs a password (protected mode stays on)`);
  const ownDir = opts.dir === undefined;
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'peerless-redis-'));
  if (ownDir) ownDirs.add(dir);
  // A directory given is the caller's, even one made here for an earlier server (a restart on
  // its files): no cleanup of that server, nor the exit handler, may remove it any more.
  else ownDirs.delete(dir);
  const args = [
    // Loopback only, and protected mode on: without a password, Redis then answers nobody
    // but this machine even if a config override widens the bind.
    ...(opts.tls
      ? ['--port', '0', '--tls-port', String(port), '--tls-cert-file', opts.tls.cert, '--tls-key-file', opts.tls.key,
        '--tls-ca-cert-file', opts.tls.ca, '--tls-auth-clients', 'no']
      : ['--port', String(port)]),
    '--bind', host, '--dir', dir,
    // Notice: its "Ready to accept connections" is how we know that this server, not another
    // on the same port, listens (read until then, and ignored after).
    '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--loglevel', 'notice',
    '--protected-mode', 'yes',
    // Tensors are tens of MB: let replicas and pub/sub clients keep up.
    '--client-output-buffer-limit', 'replica 0 0 0',
    '--proto-max-bulk-len', '1gb',
  ];
  if (opts.loadModule !== false) args.push('--loadmodule', ensureModuleBuilt());
  if (opts.password) args.push('--requirepass', opts.password);
  for (const [k, v] of Object.entries(opts.config ?? {})) args.push(`--${k}`, v);

  const command = [...(opts.wrapper ?? []), opts.binary ?? 'redis-server', ...args];
  const child = spawn(command[0]!, command.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], detached: opts.detached === true });
  let output = '', starting = true;
  const read = (d: Buffer) => { if (starting) output += d.toString(); };
  child.stdout?.on('data', read);
  child.stderr?.on('data', read);
  let exited = false;
  const exitPromise = new Promise<void>((res) => child.once('exit', () => { exited = true; res(); }));
  // 'close' comes after the last of its output: 'exit' may come before it is read.
  const outputRead = new Promise<void>((res) => child.once('close', () => res()));
  const spawnError = new Promise<Error>((res) => child.once('error', res));
  const cleanup = () => { if (ownDir && ownDirs.has(dir)) removeDir(dir); };
  // Tracked from the spawn on, not from the first connection: a process that exits while the
  // server starts (a signal then) would otherwise leave it running.
  live.add(child);
  void exitPromise.then(() => live.delete(child));
  try {
    const deadline = Date.now() + 120_000; // a long AOF or RDB loads first
    for (;;) {
      const err = await Promise.race([spawnError, new Promise<null>((r) => setTimeout(() => r(null), 20))]);
      if (err) {
        throw new Error(
          (err as NodeJS.ErrnoException).code === 'ENOENT'
            ? 'redis-server not found on PATH: install it (Debian/Ubuntu: apt-get install redis-server)'
            : `redis-server failed to start: ${err.message}`,
        );
      }
      if (exited) {
        await Promise.race([outputRead, new Promise((r) => setTimeout(r, 1_000))]);
        const why = `redis-server on port ${port} exited at start: ${output.trim().split('\n').slice(-3).join(' ')}`;
        throw /Address already in use/i.test(output) ? new PortTakenError(why) : new Error(why);
      }
      // Its own line, not a connection: one to the port could reach another server there (one
      // that took the port while ours failed to bind and was about to exit).
      if (/Ready to accept connections/.test(output)) break;
      if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not accept connections within 120 s: ${output.trim().split('\n').slice(-2).join(' ')}`);
    }
    starting = false;
    output = '';
  } catch (err) {
    if (!exited) child.kill('SIGKILL');
    live.delete(child);
    cleanup();
    throw err;
  }

  return {
    host,
    port,
    url: `${opts.tls ? 'rediss' : 'redis'}://${host}:${port}`,
    dir,
    process: child,
    async stop() {
      if (!exited) { child.kill('SIGTERM'); await exitPromise; }
      cleanup();
    },
    async kill() {
      if (!exited) { child.kill('SIGKILL'); await exitPromise; }
      cleanup();
    },
  };
}
