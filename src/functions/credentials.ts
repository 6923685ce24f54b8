/**
 * Where functions find their secrets: their environment, set by the platform that runs them
 * (the local pool's workers, the shell of `function serve`, a Lambda function's configuration).
 * Events carry addresses and key names, never a password.
 *
 * With a network password, peers give the functions the `peerless-functions` user, whose
 * password derives from it (src/peer/net/access.ts; `peerless credentials` prints it).
 */
export const REDIS_USERNAME_ENV = 'PEERLESS_REDIS_USERNAME';
export const REDIS_PASSWORD_ENV = 'PEERLESS_REDIS_PASSWORD';

/** The Redis user and password this function instance was given, if any. */
export function redisCredentials(): { username?: string; password?: string } {
  return {
    username: process.env[REDIS_USERNAME_ENV] || undefined,
    password: process.env[REDIS_PASSWORD_ENV] || undefined,
  };
}
