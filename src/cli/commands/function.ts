import { packageFunction, type PackageOptions } from '../../functions/package.ts';
import { LOOPBACK, serveFunctions } from '../../platform/http/server.ts';
import { formatBytes } from '../format.ts';
import { createLog, type Log } from '../log.ts';
import { stopWithin, untilSignal } from '../signals.ts';

/**
 * `peerless function serve`: hosts the handlers until SIGINT/SIGTERM. Callers must present
 * PEERLESS_FUNCTION_TOKEN as a bearer token, and events may name only allowed Redis servers.
 */
export async function functionServe(port: number, host: string, allowRedis: string | undefined, tlsCert?: string, tlsKey?: string, log: Log = createLog()): Promise<void> {
  if (Boolean(tlsCert) !== Boolean(tlsKey)) throw new Error('function serve: --tls-cert and --tls-key go together (the certificate and its key)');
  const token = process.env.PEERLESS_FUNCTION_TOKEN;
  if (!token) {
    throw new Error('function serve needs a bearer token: set PEERLESS_FUNCTION_TOKEN (the peers send the same value, from their own environment, with --platform http)');
  }
  const allow = allowRedis === undefined ? LOOPBACK : allowRedis.split(',').map((s) => s.trim()).filter(Boolean);
  // Every answer at debug level; failures (5xx) as warnings, refusals (4xx) as information.
  const onAnswer = (a: { method: string; path: string; status: number; ms: number }) => {
    const line = `${a.method} ${a.path} ${a.status} ${a.ms.toFixed(0)} ms`;
    (a.status >= 500 ? log.warn : a.status >= 400 ? log.info : log.debug)(line, { ...a, ms: Math.round(a.ms) });
  };
  const server = await serveFunctions({ port, host, token, allowRedis: allow, onAnswer, ...(tlsCert && tlsKey ? { tls: { cert: tlsCert, key: tlsKey } } : {}) });
  // Listening for signals before saying it listens: a caller may signal as soon as it reads the line.
  const signalled = untilSignal();
  log.info(`peerless functions listening on ${server.url} (POST /function/gradient, /function/evaluate; GET /healthz); Redis allowed: ${allow.join(', ')}`, { url: server.url, allowRedis: allow });
  await stopWithin(await signalled, () => server.close());
}

/** `peerless function package`: the Lambda zip (wasm) or image build context (native), and how to deploy it. */
export async function functionPackage(out: string, o: PackageOptions, json: boolean): Promise<void> {
  if (o.backend !== 'wasm' && o.backend !== 'native') throw new Error(`--backend: "${String(o.backend)}" is not wasm or native`);
  const r = await packageFunction(out, o);
  if (json) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
  else process.stdout.write(`Wrote ${r.path} (${formatBytes(r.bytes)}), ${r.templates.join(', ')}\n\n${r.instructions}\n`);
}
