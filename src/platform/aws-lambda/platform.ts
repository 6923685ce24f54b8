import { InvokeCommand, LambdaClient, type LambdaClientConfig } from '@aws-sdk/client-lambda';
import type { FunctionEvents, FunctionName, FunctionResults } from '../../functions/events.ts';
import type { FunctionPlatform, LambdaPrices, PlatformMetrics } from '../platform.ts';
import { Meter, type Metered } from '../http/meter.ts';
import { networkCode, RetriesExhausted, withRetries } from '../retry.ts';
import { isLambdaResponse, TRANSIENT_PREFIX, type LambdaErrorPayload, type LambdaRequest } from './envelope.ts';

export interface AwsLambdaPlatformOptions {
  /** Default: the SDK's (AWS_REGION, the profile's region). */
  region?: string;
  /** An emulator or LocalStack, e.g. http://127.0.0.1:3002; default: the region's Lambda endpoint. */
  endpoint?: string;
  /** Default: the SDK's default provider chain (env, profile, SSO, instance/container role). */
  credentials?: LambdaClientConfig['credentials'];
  /**
   * Lambda function name (or ARN) per function; default peerless-gradient / peerless-evaluate.
   * Both may name the same Lambda: the request envelope says which function to run.
   */
  functionNames?: Partial<Record<FunctionName, string>>;
  /** Version or alias to invoke. */
  qualifier?: string;
  /** Memory for cost estimates when the function does not report its own (default 1024). */
  memoryMb?: number;
  /** Client-side limit per attempt (default 15 min + 30 s, above Lambda's own maximum). */
  timeoutMs?: number;
  /** Total attempts for throttling, 5xx and network errors (default 3). */
  attempts?: number;
  /**
   * Invocations in flight at once (default 256). The SDK's default of 50 sockets would queue
   * a round's batches client side, hidden inside the measured durations.
   */
  maxConcurrency?: number;
  prices?: LambdaPrices;
  /** A ready client (tests, custom middleware); the options above that configure one are ignored. */
  client?: LambdaClient;
}

export const DEFAULT_FUNCTION_NAMES: Record<FunctionName, string> = {
  gradient: 'peerless-gradient',
  evaluate: 'peerless-evaluate',
};

/**
 * Runs the functions on AWS Lambda (or anything speaking its Invoke API) with synchronous
 * RequestResponse invocations. The payload is `{ function, payload }` and the function
 * answers `{ result, coldStart, memoryMb }` (src/functions/lambda-entry.ts), so cold starts
 * and billed memory are what the function saw. Durations are measured client side.
 * The SDK's own retries are off: ours retry only throttling, 5xx and network errors, and
 * count the attempts into the metrics.
 */
export class AwsLambdaPlatform implements FunctionPlatform {
  readonly kind = 'aws-lambda' as const;
  /** Lambda starts an instance for each concurrent call (up to the account's concurrency). */
  readonly elastic = true;
  private readonly client: LambdaClient;
  private readonly ownsClient: boolean;
  private readonly meter: Meter;
  private readonly memoryMb: number;
  private readonly where: string;

  constructor(private readonly opts: AwsLambdaPlatformOptions = {}) {
    this.ownsClient = !opts.client;
    this.client = opts.client ?? new LambdaClient({
      region: opts.region,
      endpoint: opts.endpoint,
      credentials: opts.credentials,
      maxAttempts: 1,
      requestHandler: {
        requestTimeout: opts.timeoutMs ?? 15 * 60_000 + 30_000,
        connectionTimeout: 10_000,
        httpAgent: { keepAlive: true, maxSockets: opts.maxConcurrency ?? 256 },
        httpsAgent: { keepAlive: true, maxSockets: opts.maxConcurrency ?? 256 },
      },
    });
    this.meter = new Meter(opts.prices);
    this.memoryMb = opts.memoryMb ?? 1024;
    this.where = opts.endpoint ?? `AWS Lambda (${opts.region ?? process.env.AWS_REGION ?? 'default region'})`;
  }

  functionNameFor(name: FunctionName): string {
    return this.opts.functionNames?.[name] ?? DEFAULT_FUNCTION_NAMES[name];
  }

  /** `signal`: the caller stopped waiting; the request is cut (Lambda may still run the function) and not retried. */
  async invoke<N extends FunctionName>(name: N, event: FunctionEvents[N], opts: { signal?: AbortSignal } = {}): Promise<FunctionResults[N]> {
    const fn = this.functionNameFor(name);
    const request: LambdaRequest<N> = { function: name, payload: event };
    const payload = new TextEncoder().encode(JSON.stringify(request));
    return this.meter.measure(name, this.memoryMb, async (): Promise<Metered<FunctionResults[N]>> => {
      try {
        const out = await withRetries(() => this.invokeOnce(fn, payload, opts.signal), isTransient, { attempts: this.opts.attempts, signal: opts.signal });
        const { result, coldStart, memoryMb } = out.value;
        return { value: result as FunctionResults[N], coldStart, memoryMb, attempts: out.attempts };
      } catch (err) {
        const e = err instanceof RetriesExhausted ? err : new RetriesExhausted(err as Error, 1);
        const timedOut = e.cause.name === 'TimeoutError' || e.cause.name === 'RequestTimeout';
        throw new RetriesExhausted(new Error(this.describe(fn, e.cause, e.attempts)), e.attempts, isTransient(e.cause) || timedOut, isThrottled(e.cause));
      }
    });
  }

  private async invokeOnce(fn: string, payload: Uint8Array, signal?: AbortSignal) {
    const res = await this.client.send(new InvokeCommand({
      FunctionName: fn,
      InvocationType: 'RequestResponse',
      Qualifier: this.opts.qualifier,
      Payload: payload,
    }), { abortSignal: signal });
    const text = res.Payload ? new TextDecoder().decode(res.Payload) : '';
    if (res.FunctionError) {
      const e = parseJson<LambdaErrorPayload>(text);
      const message = firstLine(e?.errorMessage ?? (text || 'no error message'));
      const transient = e?.errorType === 'TransientError' || message.startsWith(TRANSIENT_PREFIX);
      throw new FunctionFailed(message, transient);
    }
    const body = parseJson<unknown>(text);
    if (!isLambdaResponse(body)) {
      throw new FunctionFailed(`answered without the { result, coldStart } envelope (is it the peerless bundle?): ${text.slice(0, 120)}`, false);
    }
    return body;
  }

  /** One line: which function, where, and what went wrong. */
  private describe(fn: string, err: Error, attempts: number): string {
    const tries = attempts > 1 ? ` after ${attempts} attempts` : '';
    if (err instanceof FunctionFailed) return `aws-lambda: function ${fn} failed${tries}: ${err.message}`;
    const code = networkCode(err);
    if (code) return `aws-lambda: cannot reach ${this.where} (${code})${tries}`;
    if (err.name === 'TimeoutError' || err.name === 'RequestTimeout') return `aws-lambda: ${fn} did not answer in time at ${this.where}`;
    if (err.name === 'ResourceNotFoundException') return `aws-lambda: function ${fn} not found at ${this.where}: ${firstLine(err.message)}`;
    if (err.name === 'CredentialsProviderError') return `aws-lambda: no AWS credentials (default provider chain): ${firstLine(err.message)}`;
    return `aws-lambda: invoking ${fn} at ${this.where} failed${tries}: ${err.name}: ${firstLine(err.message)}`;
  }

  metrics(): PlatformMetrics {
    return this.meter.metrics();
  }

  async close(): Promise<void> {
    if (this.ownsClient) this.client.destroy();
  }
}

/** The function ran and threw: retried only when it said the cause was transient. */
class FunctionFailed extends Error {
  constructor(message: string, readonly transient: boolean) {
    super(message);
  }
}

const THROTTLE_NAMES = new Set(['ThrottlingException', 'TooManyRequestsException', 'EC2ThrottledException']);
const TRANSIENT_NAMES = new Set([...THROTTLE_NAMES, 'ServiceException', 'ServiceUnavailableException', 'ResourceNotReadyException']);

/** Lambda is over a limit (account or function concurrency, EC2 capacity): back off before calling again. */
function isThrottled(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return (e.name !== undefined && THROTTLE_NAMES.has(e.name)) || e.$metadata?.httpStatusCode === 429;
}

function isTransient(err: unknown): boolean {
  if (err instanceof FunctionFailed) return err.transient;
  if (networkCode(err)) return true;
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  // A client-side timeout is not retried: the function is likely still running.
  if (e.name && TRANSIENT_NAMES.has(e.name)) return true;
  const status = e.$metadata?.httpStatusCode ?? 0;
  return status === 429 || status >= 500;
}

function parseJson<T>(text: string): T | undefined {
  try {
    return JSON.parse(text) as T;
  } catch {
    return undefined;
  }
}

function firstLine(s: string): string {
  return s.split('\n', 1)[0].trim();
}
