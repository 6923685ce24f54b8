/**
 * Who may do what in a peer's Redis, when the network has a password (its secret).
 *
 *   the owning peer       the default user, with the network password: everything;
 *   peerless-functions    the gradient and evaluate functions: read the layout, parameters and
 *                         data (model:*, data:*), push gradient contributions into the round's
 *                         sums (g:*), and nothing else: no other writes, no CONFIG, FLUSHALL...
 *   peerless-observer     `peerless status` and dashboards: read-only, no admin commands.
 *
 * Their passwords derive from the network secret (HMAC-SHA256), so every peer creates the same
 * users on its own Redis without sending a password anywhere, and the functions and observers
 * never learn the secret itself. The owner creates them when it starts and again when its Redis
 * comes back empty (Redis keeps users in memory only).
 */
import { createHmac } from 'node:crypto';
import type { Redis } from '../../tensor/redis-client.ts';

export type Role = 'functions' | 'observer';

export interface Credentials {
  username: string;
  password: string;
}

export const USERNAMES: Record<Role, string> = { functions: 'peerless-functions', observer: 'peerless-observer' };

/** A role's credentials, derived from the network secret. */
export function credentialsFor(role: Role, secret: string): Credentials {
  const password = createHmac('sha256', secret).update(`peerless:${role}`).digest('hex');
  return { username: USERNAMES[role], password };
}

/** What any client of ours needs to connect: node-redis says hello, names itself, pings. */
const CONNECT = ['+ping', '+hello', '+auth', '+client|setname', '+client|id'];

/** The ACL rules of each role (after `reset`: no keys, no channels, no commands). */
export function rules(role: Role): string[] {
  if (role === 'functions') {
    return [
      '%R~model:*', '%R~data:*', '~g:*',
      '-@all', ...CONNECT,
      '+get', '+getrange', '+strlen', '+exists',
      '+pl.len', '+pl.getrange', '+pl.push', '+pl.accum',
    ];
  }
  return [
    '~*', '&*',
    '-@all', ...CONNECT,
    '+@read', '-@dangerous', '+info', '+pl.len', '+pl.getrange', '+pl.checksum',
  ];
}

/** Creates (or resets) the functions' and observers' users in this peer's Redis. */
export async function ensureUsers(local: Redis, secret: string): Promise<void> {
  for (const role of ['functions', 'observer'] as const) {
    const { username, password } = credentialsFor(role, secret);
    await local.sendCommand(['ACL', 'SETUSER', username, 'reset', 'on', `>${password}`, ...rules(role)]);
  }
}
