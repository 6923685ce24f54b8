/**
 * Which failures may pass on a retry. A platform retries only these: a lost or refused
 * connection, a reset socket, a Redis that is loading. Everything else (a wrong layout hash,
 * a missing key, an invalid event, a refused gradient) would fail the same way again.
 */
const TRANSIENT = /ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|EAI_AGAIN|socket closed|connection (is )?closed|cannot reach redis|lost redis|LOADING|TRYAGAIN|BUSY /i;

export function isTransient(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as NodeJS.ErrnoException).code ?? '';
  return TRANSIENT.test(code) || TRANSIENT.test(err.message) || (err.cause !== undefined && isTransient(err.cause));
}

/** One line: a function's error must fit a log line and a Lambda error message. */
export function oneLine(message: string): string {
  return message.replace(/\s*\n\s*/g, ' ').trim();
}
