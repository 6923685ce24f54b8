/**
 * The AWS Lambda handler (`lambda-entry.handler` in the packaged bundle): unwraps the
 * request envelope, runs the stateless handler, wraps the result with the cold-start flag.
 * A thrown Error becomes Lambda's FunctionError 'Unhandled' with its message, which the
 * platform adapter turns into a one-line error naming the function.
 */
import type { FunctionEvents, FunctionName } from './events.ts';
import { handle } from './handlers.ts';
import { TRANSIENT_PREFIX, type LambdaRequest, type LambdaResponse } from '../platform/aws-lambda/envelope.ts';
import { isTransient } from './errors.ts';
import { isFunctionName, FUNCTION_NAMES } from './event-schema.ts';

// Module scope lives as long as the container: false only for its first invocation.
let warm = false;

interface LambdaContext {
  memoryLimitInMB?: string | number;
}

export const handler = async (event: unknown, context?: LambdaContext): Promise<LambdaResponse> => {
  const coldStart = !warm;
  warm = true;
  const { name, payload } = unwrap(event);
  let result;
  try {
    // handle() checks the event's shape and names the bad field.
    result = await handle(name, payload as FunctionEvents[typeof name]);
  } catch (err) {
    throw isTransient(err) ? transientError(err as Error) : err;
  }
  const memory = Number(context?.memoryLimitInMB ?? process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE);
  return { result, coldStart, ...(memory > 0 ? { memoryMb: memory } : {}) };
};

/**
 * Marks a failure worth retrying (a lost Redis connection) so the platform retries it.
 * The mark is in the message as well as errorType, because serverless-offline reports
 * every errorType as "Error".
 */
function transientError(err: Error): Error {
  const e = new Error(`${TRANSIENT_PREFIX}${err.message}`, { cause: err });
  e.name = 'TransientError';
  return e;
}

/**
 * `{ function, payload }` as the platform sends it; a bare event is accepted when the
 * deployment pins its function with PEERLESS_FUNCTION (handy for `aws lambda invoke`).
 */
function unwrap(event: unknown): { name: FunctionName; payload: unknown } {
  if (typeof event !== 'object' || event === null) throw new Error('lambda-entry: the event must be a JSON object');
  const req = event as Partial<LambdaRequest>;
  if ('function' in req) {
    if (!isFunctionName(req.function)) throw new Error(`lambda-entry: unknown function '${String(req.function)}' (known: ${FUNCTION_NAMES.join(', ')})`);
    return { name: req.function, payload: req.payload };
  }
  const pinned = process.env.PEERLESS_FUNCTION;
  if (isFunctionName(pinned)) return { name: pinned, payload: event };
  throw new Error('lambda-entry: the event must be { function, payload } (or set PEERLESS_FUNCTION on the deployment)');
}
