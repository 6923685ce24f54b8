import type { FunctionEvents, FunctionName, FunctionResults } from './events.ts';
import { oneLine } from './errors.ts';
import { isFunctionName, parseEvent, FUNCTION_NAMES } from './event-schema.ts';
import { evaluate } from './evaluate.ts';
import { gradient } from './gradient.ts';

const handlers: { [N in FunctionName]: (e: FunctionEvents[N]) => Promise<FunctionResults[N]> } = { gradient, evaluate };

/** A handler's failure: one line naming the function; `cause` keeps the original (codes, for retry decisions). */
export class FunctionFailure extends Error {
  override readonly name = 'FunctionFailure';
}

/**
 * The one entry every platform calls (local worker, Lambda, HTTP server): checks the
 * function's name and its event, then runs it. Errors are one line naming the function
 * and the problem, e.g. `gradient: missing key "data:batch:7:x"`.
 */
export async function handle<N extends FunctionName>(name: N, event: FunctionEvents[N]): Promise<FunctionResults[N]> {
  if (!isFunctionName(name)) throw new Error(`unknown function "${String(name)}": expected one of ${FUNCTION_NAMES.join(', ')}`);
  const checked = parseEvent(name, event);
  try {
    return await handlers[name](checked);
  } catch (err) {
    const msg = oneLine(err instanceof Error ? err.message : String(err));
    throw new FunctionFailure(msg.startsWith(`${name}: `) ? msg : `${name}: ${msg}`, { cause: err });
  }
}
