/**
 * Who may do what in a peer's Redis, when the network has a password (its secret).
 *
 *   the owning peer       the default user, with its Redis's own password: everything;
 *   peerless-peers        the other peers: write only the exchange's inboxes (round markers,
 *                         reports, the exchange's tensor buffers, join requests, heartbeats,
 *                         a stop request), read the network's records and the training state
 *                         (a repair copies it); never the parameters, CONFIG, FLUSHALL...
 *   peerless-functions    the gradient and evaluate functions: read the layout, parameters and
 *                         data (model:*, data:*), push gradient contributions into the round's
 *                         sums (g:*), and nothing else;
 *   peerless-observer     `peerless status`, dashboards, export: read-only, no admin commands;
 *   peerless-admit        a joiner's Redis only, while it waits to be admitted: the
 *                         coordinator writes the state copy, records and admission there with
 *                         a password of that request's own; the joiner deletes the user once
 *                         answered.
 *
 * Their passwords derive from the network secret (HMAC-SHA256), so every peer creates the same
 * users on its own Redis without sending a password anywhere, and the functions and observers
 * never learn the secret itself. The owner's password is not derived: a peer holding the secret
 * could compute it. The owner creates the users when it starts and again when its Redis comes
 * back empty (Redis keeps users in memory only).
 *
 * One user for all other peers, not one per peer: every peer holds the secret, so it could
 * derive any other peer's password; per-peer users would only look stricter.
 */
import { createHmac } from 'node:crypto';
import type { Redis } from '../../tensor/redis-client.ts';

export type Role = 'functions' | 'observer' | 'peers';

export interface Credentials {
  username: string;
  password: string;
}

export const USERNAMES: Record<Role, string> = { functions: 'peerless-functions', observer: 'peerless-observer', peers: 'peerless-peers' };
export const ADMIT_USERNAME = 'peerless-admit';

const derive = (secret: string, what: string) => createHmac('sha256', secret).update(`peerless:${what}`).digest('hex');

/** A role's credentials, derived from the network secret. */
export function credentialsFor(role: Role, secret: string): Credentials {
  return { username: USERNAMES[role], password: derive(secret, role) };
}

/** The credentials a coordinator admits the join request `nonce` with (a password per request). */
export function admitCredentials(secret: string, nonce: string): Credentials {
  return { username: ADMIT_USERNAME, password: derive(secret, `admit:${nonce}`) };
}

/** What any client of ours needs to connect: node-redis says hello, names itself, pings. */
const CONNECT = ['+ping', '+hello', '+auth', '+client|setname', '+client|id'];

/**
 * What another peer writes here: the exchange's inboxes (see keys.ts), announced on the inbox
 * channel. During founding (a local cluster's peers registering before round 0) also the
 * member records, which each founding member writes into the earlier ones'.
 */
const PEER_WRITES = [
  '~r:*:from:*', '~r:*:part:*', '~r:*:gathered:*', '~r:*:report:*', '~r:*:eval:*', '~r:*:sits-out:*',
  '~s:*:from:*', '~s:*:part:*', '~s:*:agg',
  '~peerless:join-requests', '~peerless:heartbeat:*', '~peerless:stop-request',
];

/** The ACL rules of each role (after `reset`: no keys, no channels, no commands). */
export function rules(role: Role, o: { founding?: boolean } = {}): string[] {
  if (role === 'peers') {
    return [
      '%R~peerless:*', '%R~model:*', '%R~opt:*', ...PEER_WRITES, ...(o.founding ? ['~peerless:members'] : []),
      '&peerless:inbox',
      '-@all', ...CONNECT,
      '+get', '+getrange', '+strlen', '+exists', '+hget', '+hgetall', '+lrange',
      '+set', '+rpush', '+publish', ...(o.founding ? ['+hset'] : []),
      '+pl.len', '+pl.getrange', '+pl.checksum', '+pl.zeros', '+pl.setrange',
    ];
  }
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
    '+@read', '-@dangerous', '+info', '+pl.len', '+pl.getrange', '+pl.checksum', '+pl.stats',
  ];
}

/**
 * Creates (or resets) the other peers', functions' and observers' users in this peer's Redis.
 * `founding` lets the other peers write the member records too, while a founding group
 * registers; the peer calls this again without it before its first round.
 */
export async function ensureUsers(local: Redis, secret: string, o: { founding?: boolean } = {}): Promise<void> {
  for (const role of ['peers', 'functions', 'observer'] as const) {
    const { username, password } = credentialsFor(role, secret);
    await local.sendCommand(['ACL', 'SETUSER', username, 'reset', 'on', `>${password}`, ...rules(role, o)]);
  }
}

/**
 * A joiner opens its own Redis to the coordinator that will admit the request `nonce`: the
 * state copy, the network's records and the admission (keys model:*, opt:*, peerless:*; not
 * its stored data, no admin commands). Only until the answer: a new joiner holds no training
 * state yet, and a rejoining one's is about to be replaced by the copy.
 */
export async function openForAdmission(local: Redis, secret: string, nonce: string): Promise<void> {
  const { username, password } = admitCredentials(secret, nonce);
  await local.sendCommand(['ACL', 'SETUSER', username, 'reset', 'on', `>${password}`,
    '~model:*', '~opt:*', '~peerless:*', '&peerless:inbox',
    '-@all', ...CONNECT, '+@read', '+@write', '-@dangerous', '+multi', '+exec', '+publish',
    '+pl.len', '+pl.getrange', '+pl.zeros', '+pl.setrange']);
}

/** Closes what openForAdmission opened (admitted, refused, or given up). */
export async function closeAdmission(local: Redis): Promise<void> {
  await local.sendCommand(['ACL', 'DELUSER', ADMIT_USERNAME]);
}
