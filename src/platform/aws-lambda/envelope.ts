import type { FunctionEvents, FunctionName, FunctionResults } from '../../functions/events.ts';

/**
 * What travels through Lambda's Invoke API. One bundle serves both functions: the request
 * names the function, so a deployment may use one Lambda for both or one per function
 * (the platform maps names to Lambda function names). The response wraps the result with
 * what only the function knows: whether this was its container's first invocation, and
 * the memory it was given.
 */
export interface LambdaRequest<N extends FunctionName = FunctionName> {
  function: N;
  payload: FunctionEvents[N];
}

export interface LambdaResponse<N extends FunctionName = FunctionName> {
  result: FunctionResults[N];
  coldStart: boolean;
  memoryMb?: number;
}

/** Starts the message of a failure the function says is worth retrying (errorType TransientError). */
export const TRANSIENT_PREFIX = 'transient: ';

/** Lambda's error payload for a handler that threw (FunctionError 'Unhandled'). */
export interface LambdaErrorPayload {
  errorType?: string;
  errorMessage?: string;
}

export function isLambdaResponse(x: unknown): x is LambdaResponse {
  return typeof x === 'object' && x !== null && 'result' in x && typeof (x as { coldStart?: unknown }).coldStart === 'boolean';
}
