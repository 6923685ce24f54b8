import type { FunctionEvents, FunctionName, FunctionResults } from './events.ts';
import { isFunctionName, parseEvent, FUNCTION_NAMES } from './event-schema.ts';
import { evaluate } from './evaluate.ts';
import { gradient } from './gradient.ts';

const handlers: { [N in FunctionName]: (e: FunctionEvents[N]) => Promise<FunctionResults[N]> } = { gradient, evaluate };

/**
 * The one entry every platform calls (local worker, Lambda, HTTP server): checks the
 * function's name and its event, then runs it. Errors are one line naming the problem.
 */
export async function handle<N extends FunctionName>(name: N, event: FunctionEvents[N]): Promise<FunctionResults[N]> {
  if (!isFunctionName(name)) throw new Error(`unknown function "${String(name)}": expected one of ${FUNCTION_NAMES.join(', ')}`);
  const checked = parseEvent(name, event);
  return handlers[name](checked);
}
