/**
 * Where functions find their secrets: their environment, set by the platform that runs them
 * (the local pool's workers, the shell of `function serve`, a Lambda function's configuration).
 * Events carry addresses and key names, never a password.
 */
export const REDIS_PASSWORD_ENV = 'PEERLESS_REDIS_PASSWORD';

/** The Redis password this function instance was given, if any. */
export function redisPassword(): string | undefined {
  return process.env[REDIS_PASSWORD_ENV] || undefined;
}
