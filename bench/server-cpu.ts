import { readFile } from 'node:fs/promises';
import type { Redis } from '../src/tensor/redis-client.ts';

/** A redis-server's CPU so far (INFO cpu: user + system, all its threads), ms. */
export async function serverCpuMs(c: Redis): Promise<number> {
  const info = String(await c.sendCommand(['INFO', 'cpu']));
  const field = (f: string) => Number(new RegExp(`${f}:([0-9.]+)`).exec(info)?.[1] ?? NaN);
  return (field('used_cpu_user') + field('used_cpu_sys')) * 1000;
}

/** A redis-server's process id, as it reports it (INFO server). */
export async function serverPid(c: Redis): Promise<number> {
  const info = String(await c.sendCommand(['INFO', 'server']));
  return Number(/process_id:(\d+)/.exec(info)?.[1] ?? NaN);
}

/**
 * How long a redis-server's main thread (the one that runs commands) has been runnable but
 * waiting for a core, ms so far: the second field of Linux's /proc/<pid>/schedstat. Every
 * such wait that falls inside a command lengthens it, and the slow log counts it. Null where
 * the kernel does not say (no /proc, or schedstats off).
 */
export async function serverRunDelayMs(pid: number): Promise<number | null> {
  try {
    const [, waitNs] = (await readFile(`/proc/${pid}/schedstat`, 'utf8')).trim().split(/\s+/).map(Number);
    return Number.isFinite(waitNs) ? waitNs / 1e6 : null;
  } catch {
    return null;
  }
}

/** A process's nice value (field 19 of /proc/<pid>/stat), or null where /proc is absent. */
export async function niceOf(pid: number): Promise<number | null> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces; the fields after its closing parenthesis do not.
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
  } catch {
    return null;
  }
}

/** Calls and server-side time of one command kind. */
export interface CommandCount {
  calls: number;
  ms: number;
}

/**
 * Every command kind a redis-server has run so far, from its own INFO commandstats: calls and
 * microseconds inside the server (queueing and the wire not included).
 */
export async function commandCounts(c: Redis): Promise<Map<string, CommandCount>> {
  const info = String(await c.sendCommand(['INFO', 'commandstats']));
  const out = new Map<string, CommandCount>();
  for (const m of info.matchAll(/cmdstat_([^:]+):calls=(\d+),usec=(\d+)/g)) {
    out.set(m[1].toUpperCase(), { calls: Number(m[2]), ms: Number(m[3]) / 1000 });
  }
  return out;
}
