/**
 * The log of a long-running process (`peer`, `function serve`) on stderr: plain lines for a
 * person by default, or JSON lines from pino for a log collector (`--log-format json`), each
 * with its time, level and fields. `--log-level` drops what is below it.
 */
import pino from 'pino';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFormat = 'text' | 'json';

export interface Log {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/** `base` fields go into every JSON line (the peer's id, say); text lines carry the message only. */
export function createLog(o: { level?: LogLevel; format?: LogFormat; base?: Record<string, unknown> } = {}): Log {
  const level = o.level ?? 'info';
  if (o.format === 'json') {
    // Synchronous writes: a line logged just before the process exits is not lost.
    const p = pino({ level, base: o.base ?? {}, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ fd: 2, sync: true }));
    const at = (l: LogLevel) => (msg: string, fields?: Record<string, unknown>) => p[l](fields ?? {}, msg);
    return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
  }
  const at = (l: LogLevel) => (msg: string) => {
    if (RANK[l] >= RANK[level]) process.stderr.write(`${msg}\n`);
  };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}
