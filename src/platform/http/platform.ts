import type { FunctionEvents, FunctionName, FunctionResults } from '../../functions/events.ts';
import type { FunctionPlatform, LambdaPrices, PlatformMetrics } from '../platform.ts';
import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import { Agent, fetch } from 'undici';
import { TLS_CA_ENV } from '../../tensor/redis-client.ts';
import { Meter } from './meter.ts';
import { networkCode, RetriesExhausted, withRetries } from '../retry.ts';

/**
 * Header our server sets on a handler failure (like Lambda's X-Amz-Function-Error):
 * 'Unhandled' is not retried, 'Transient' (e.g. the peer's Redis was briefly unreachable) is.
 */
export const FUNCTION_ERROR_HEADER = 'x-peerless-function-error';
/** Header our server sets to 'true' on the first invocation of a function in its process. */
export const COLD_START_HEADER = 'x-peerless-cold-start';

export interface HttpPlatformOptions {
  /**
   * Where the functions live. Without `{name}` it is a gateway base URL and functions are at
   * `${url}/function/{name}` (OpenFaaS, and `peerless function serve`). With `{name}` it is a
   * template: Knative `http://{name}.default.example.com/`, OpenWhisk
   * `https://host/api/v1/namespaces/_/actions/{name}?blocking=true&result=true`.
   */
  url: string;
  /** Deployed name per function (substituted for `{name}`); default: the function's own name. */
  functionNames?: Partial<Record<FunctionName, string>>;
  /** Extra request headers, e.g. an Authorization for OpenWhisk. */
  headers?: Record<string, string>;
  /**
   * Sent as `Authorization: Bearer <token>` (what `peerless function serve` requires).
   * Default: PEERLESS_FUNCTION_TOKEN from the environment.
   */
  token?: string;
  /** Per attempt; default 15 min (Lambda's maximum). */
  timeoutMs?: number;
  /** Total attempts for 5xx from a gateway and network errors (default 3). */
  attempts?: number;
  /** Memory assumed for cost estimates when the function does not report it (default 1024). */
  memoryMb?: number;
  prices?: LambdaPrices;
  /**
   * Whether every call gets an instance of its own at once (a gateway in front of Lambda,
   * Knative with room to scale): the peers then give a slow call a second copy. Default
   * false: `peerless function serve` queues calls on its pool, where a copy would wait.
   */
  elastic?: boolean;
}

/**
 * Invokes functions by POSTing the JSON event and reading the JSON result: the contract of
 * OpenFaaS, Knative, OpenWhisk web actions and `peerless function serve`. Retries only what
 * can succeed on a second try (gateway 5xx, network errors); a handler's own failure and
 * any 4xx fail at once with the server's message.
 */
export class HttpPlatform implements FunctionPlatform {
  readonly kind = 'http' as const;
  readonly elastic: boolean;
  private readonly meter: Meter;
  private readonly memoryMb: number;

  /** Connections trust the CA named by PEERLESS_TLS_CA besides the system's (an https:// function server of your own). */
  private readonly dispatcher: Agent;

  constructor(private readonly opts: HttpPlatformOptions) {
    const caFile = process.env[TLS_CA_ENV];
    let ca: Buffer | undefined;
    if (caFile) {
      try {
        ca = readFileSync(caFile);
      } catch (err) {
        throw new Error(`${TLS_CA_ENV}=${caFile}: cannot read the CA certificate (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
      }
    }
    this.dispatcher = new Agent(ca ? { connect: { ca: [...rootCertificates, ca.toString()] } } : {});
    try {
      new URL(this.urlFor('gradient'));
    } catch {
      throw new Error(`http platform: invalid url ${opts.url}`);
    }
    this.meter = new Meter(opts.prices);
    this.memoryMb = opts.memoryMb ?? 1024;
    this.elastic = opts.elastic ?? false;
  }

  urlFor(name: FunctionName): string {
    const deployed = encodeURIComponent(this.opts.functionNames?.[name] ?? name);
    const u = this.opts.url;
    return u.includes('{name}') ? u.replaceAll('{name}', deployed) : `${u.replace(/\/+$/, '')}/function/${deployed}`;
  }

  private get auth(): Record<string, string> {
    const token = this.opts.token ?? process.env.PEERLESS_FUNCTION_TOKEN;
    return token ? { authorization: `Bearer ${token}` } : {};
  }

  /**
   * `signal`: the caller stopped waiting (its deadline, or a hedged copy answered first). The
   * request is cut and not retried; the function may still run to its end on the server,
   * where its late result is refused (or counted once, if it lands first).
   */
  async invoke<N extends FunctionName>(name: N, event: FunctionEvents[N], opts: { signal?: AbortSignal } = {}): Promise<FunctionResults[N]> {
    const url = this.urlFor(name);
    const body = JSON.stringify(event);
    return this.meter.measure(name, this.memoryMb, async () => {
      try {
        const out = await withRetries(() => this.post(url, body, opts.signal), isTransient, { attempts: this.opts.attempts, signal: opts.signal });
        return { ...out.value, value: out.value.value as FunctionResults[N], attempts: out.attempts };
      } catch (err) {
        if (err instanceof RetriesExhausted) {
          const suffix = err.attempts > 1 ? ` after ${err.attempts} attempts` : '';
          const later = isTransient(err.cause) || (err.cause instanceof HttpError && err.cause.kind === 'timeout');
          const throttled = err.cause instanceof HttpError && err.cause.status === 429;
          throw new RetriesExhausted(new Error(`${err.message}${suffix}`), err.attempts, later, throttled);
        }
        throw err;
      }
    });
  }

  private async post(url: string, body: string, caller?: AbortSignal): Promise<{ value: unknown; coldStart: boolean }> {
    const timeoutMs = this.opts.timeoutMs ?? 15 * 60_000;
    const abandoned = () => new HttpError(`http platform: the call to ${url} was abandoned by its caller`, 'other');
    if (caller?.aborted) throw abandoned();
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), timeoutMs);
    const abandon = () => ac.abort();
    caller?.addEventListener('abort', abandon, { once: true });
    let res: Awaited<ReturnType<typeof fetch>>;
    let text: string;
    try {
      res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json', ...this.auth, ...this.opts.headers },
        body,
        signal: ac.signal,
        dispatcher: this.dispatcher,
      });
      text = await res.text();
    } catch (err) {
      if (caller?.aborted) throw abandoned();
      if (ac.signal.aborted) throw new HttpError(`http platform: ${url} did not answer within ${timeoutMs} ms`, 'timeout');
      const code = networkCode(err);
      throw new HttpError(`http platform: cannot reach ${url} (${code ?? innermost(err)})`, code ? 'network' : 'other');
    } finally {
      clearTimeout(timer);
      caller?.removeEventListener('abort', abandon);
    }

    if (!res.ok) {
      const message = errorMessage(text) ?? `${res.status} ${res.statusText}`.trim();
      const functionError = res.headers.get(FUNCTION_ERROR_HEADER);
      const retryable = functionError === null ? res.status >= 500 || res.status === 429 : functionError === 'Transient';
      const kind = retryable ? 'gateway' : 'function';
      throw new HttpError(`http platform: ${url} answered ${res.status}: ${message}`, kind, res.status);
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw new HttpError(`http platform: ${url} answered non-JSON: ${text.slice(0, 120)}`, 'function');
    }
    return { value, coldStart: res.headers.get(COLD_START_HEADER) === 'true' };
  }

  metrics(): PlatformMetrics {
    return this.meter.metrics();
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }
}

/** The innermost cause's message ("fetch failed" says less than "self-signed certificate"). */
function innermost(err: unknown): string {
  let e = err as { message?: string; cause?: unknown; code?: string };
  while (e.cause && typeof e.cause === 'object') e = e.cause as typeof e;
  return e.code && e.message && !e.message.includes(e.code) ? `${e.code}: ${e.message}` : String(e.message ?? err);
}

type HttpErrorKind = 'network' | 'gateway' | 'timeout' | 'function' | 'other';

class HttpError extends Error {
  constructor(message: string, readonly kind: HttpErrorKind, readonly status?: number) {
    super(message);
  }
}

/** Gateway 5xx and dropped connections may pass on a second try; timeouts are not retried,
 * since the slow function is probably still running and a retry doubles the load. */
function isTransient(err: unknown): boolean {
  return err instanceof HttpError && (err.kind === 'network' || err.kind === 'gateway');
}

/** The message of a JSON error body in the common shapes ({error}, {message}, OpenWhisk's {error: {...}}). */
function errorMessage(text: string): string | undefined {
  try {
    const j = JSON.parse(text) as Record<string, unknown>;
    const e = j.error ?? j.message ?? j.errorMessage;
    if (typeof e === 'string') return e;
    if (e && typeof e === 'object' && typeof (e as { message?: unknown }).message === 'string') return (e as { message: string }).message;
  } catch {
    // not JSON: a gateway's HTML or plain-text page
  }
  const t = text.trim().replace(/\s+/g, ' ');
  return t ? t.slice(0, 200) : undefined;
}
