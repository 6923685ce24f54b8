import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedisServer, type RedisServer } from '../../cluster/redis-server.ts';
import { toBytes } from '../../tensor/bytes.ts';
import { closeRedis, connectRedis, type Redis } from '../../tensor/redis-client.ts';
import { admitCredentials, closeAdmission, credentialsFor, ensureUsers, openForAdmission } from './access.ts';
import { K } from './keys.ts';

// The users a peer creates in its own Redis when the network has a password, on a real
// redis-server with the module: what each may do, and what it is refused.
const SECRET = 'network-secret';
let server: RedisServer;
let owner: Redis;
const opened: Redis[] = [];

async function as(role: 'functions' | 'observer' | 'peers'): Promise<Redis> {
  const c = await connectRedis({ url: server.url, ...credentialsFor(role, SECRET) });
  opened.push(c);
  return c;
}

const floats = (n: number) => toBytes(new Float32Array(n).fill(0.5));
const refused = (p: Promise<unknown>) => expect(p).rejects.toThrow(/NOPERM/);

beforeAll(async () => {
  server = await startRedisServer({ password: SECRET });
  owner = await connectRedis({ url: server.url, password: SECRET });
  await ensureUsers(owner, SECRET);
  await owner.sendCommand(['PL.SET', 'model:params', floats(8)]);
  await owner.set('model:layout', 'h');
  await owner.set('data:batch:0:x', 'xx');
  await owner.set('peerless:members', 'm');
});
afterAll(async () => {
  await Promise.all([...opened, owner].map((c) => closeRedis(c)));
  await server?.stop();
});

describe('access in a peer\'s Redis with a network password', () => {
  it('the functions read the model and the data, push gradients, and touch nothing else', async () => {
    const f = await as('functions');
    expect(await f.get('model:layout')).toBe('h');
    expect(await f.sendCommand(['PL.LEN', 'model:params'])).toBe(8);
    expect(await f.get('data:batch:0:x')).toBe('xx');
    expect(await f.sendCommand(['PL.PUSH', 'g:0:sum', 'g:0:avg', 'b0', 'a1', '1', '8', '8', '0', floats(8)])).toEqual([1, 1, 1]);
    // Another peer's parameters, the network's records, the server itself: refused.
    await refused(f.set('model:params', 'x'));
    await refused(f.sendCommand(['PL.SETRANGE', 'model:params', '0', floats(1)]));
    await refused(f.sendCommand(['PL.PUSH', 'model:params', 'g:0:avg', 'b1', 'a2', '1', '8', '8', '0', floats(8)]));
    await refused(f.get('peerless:members'));
    for (const cmd of [['CONFIG', 'SET', 'maxmemory', '1'], ['FLUSHALL'], ['KEYS', '*'], ['MODULE', 'LIST'], ['SHUTDOWN']]) {
      await refused(f.sendCommand(cmd));
    }
    // DEBUG is refused before ACLs are asked (enable-debug-command is off), for the owner too.
    await expect(f.sendCommand(['DEBUG', 'SLEEP', '0'])).rejects.toThrow(/NOPERM|not allowed/);
    expect(await owner.sendCommand(['PL.LEN', 'model:params'])).toBe(8);
  });

  it('an observer reads everything and changes nothing', async () => {
    const o = await as('observer');
    expect(await o.get('peerless:members')).toBe('m');
    expect(await o.hGetAll('no-such-hash')).toEqual({});
    expect(await o.sendCommand(['PL.CHECKSUM', 'model:params'])).toMatch(/^[0-9a-f]{16}$/);
    expect(await o.sendCommand(['PL.STATS'])).toHaveLength(10);
    await refused(o.set('peerless:members', 'x'));
    await refused(o.sendCommand(['PL.SCALE', 'model:params', '2']));
    await refused(o.sendCommand(['CONFIG', 'SET', 'maxmemory', '1']));
    await refused(o.sendCommand(['FLUSHDB']));
  });

  it('another peer writes only the exchange\'s inboxes, reads what a repair copies, and cannot touch this peer\'s state', async () => {
    const p = await as('peers');
    await owner.sendCommand(['PL.SET', K.velocity, floats(8)]);
    // The exchange: a buffer allocated once, written in chunks, marked and announced.
    await p.sendCommand(['PL.ZEROS', K.slot.from(3, 'p1'), '8']);
    await p.sendCommand(['PL.SETRANGE', K.slot.from(3, 'p1'), '0', floats(8)]);
    await p.sendCommand(['PL.ZEROS', K.slot.part(3, 'p0', 'p1'), '4']);
    // An owner's all-gather writes its slice into every member's aggregate.
    await owner.sendCommand(['PL.ZEROS', K.aggregate(3), '8']);
    await p.sendCommand(['PL.SETRANGE', K.aggregate(3), '4', floats(4)]);
    await p.set(K.from(3, 'p1'), '1');
    await p.set(K.report(3, 'p1'), '{}');
    await p.set(K.heartbeat('p1'), '1', { PX: 1000 });
    await p.rPush(K.joinRequests, '{}');
    await p.set(K.stopRequest, '9');
    expect(await p.publish(K.inbox, K.from(3, 'p1'))).toBeGreaterThanOrEqual(0);
    // A repair reads the training state; a joiner reads the network's records.
    expect(await p.sendCommand(['PL.LEN', K.params])).toBe(8);
    expect(await p.sendCommand(['PL.GETRANGE', K.velocity, '0', '2'])).toBeTruthy();
    expect(await p.get('peerless:members')).toBe('m');
    // This peer's parameters and optimizer state, its records, its sums, its data, the server: refused.
    await refused(p.set(K.params, 'x'));
    await refused(p.sendCommand(['PL.SETRANGE', K.params, '0', floats(1)]));
    await refused(p.sendCommand(['PL.SCALE', K.params, '0']));
    await refused(p.sendCommand(['PL.ZEROS', K.velocity, '8']));
    await refused(p.set(K.round, '999999'));
    await refused(p.hSet(K.members, 'p9', '{}'));
    await refused(p.set(K.updatedPieces(3), '1'));
    await refused(p.sendCommand(['PL.PUSH', 'g:0:sum', 'g:0:avg', 'b0', 'a1', '1', '8', '8', '0', floats(8)]));
    await refused(p.get('data:batch:0:x'));
    await refused(p.del(K.from(3, 'p1')));
    for (const cmd of [['CONFIG', 'SET', 'maxmemory', '1mb'], ['FLUSHALL'], ['FLUSHDB'], ['KEYS', '*'], ['MODULE', 'LIST'], ['SHUTDOWN'], ['ACL', 'SETUSER', 'x', 'on']]) {
      await refused(p.sendCommand(cmd));
    }
    expect(await owner.sendCommand(['PL.LEN', K.params])).toBe(8);
    expect(await owner.get('data:batch:0:x')).toBe('xx');
  });

  it('a founding group may write the member records, and once it runs no longer', async () => {
    await ensureUsers(owner, SECRET, { founding: true });
    const p = await as('peers');
    await owner.del(K.members);
    await p.hSet(K.members, 'p1', '{"id":"p1"}');
    await ensureUsers(owner, SECRET);
    await refused(p.hSet(K.members, 'p2', '{}'));
    expect(await owner.hGetAll(K.members)).toEqual({ p1: '{"id":"p1"}' });
    await owner.del(K.members);
    await owner.set(K.members, 'm');
  });

  it('a joiner opens its Redis to its admission alone, and closes it once answered', async () => {
    await openForAdmission(owner, SECRET, 'nonce-1');
    const c = await connectRedis({ url: server.url, ...admitCredentials(SECRET, 'nonce-1') });
    opened.push(c);
    await c.sendCommand(['PL.ZEROS', 'opt:m', '8']);
    await c.sendCommand(['PL.SETRANGE', 'opt:m', '0', floats(8)]);
    await c.multi().set(K.config, '{}').set(K.admission, '{"nonce":"nonce-1"}').exec();
    await refused(c.get('data:batch:0:x'));
    await refused(c.sendCommand(['FLUSHALL']));
    await refused(c.sendCommand(['CONFIG', 'SET', 'maxmemory', '1mb']));
    // Another request's password does not open it.
    await expect(connectRedis({ url: server.url, ...admitCredentials(SECRET, 'nonce-2') })).rejects.toThrow(/refused the credentials/);
    await closeAdmission(owner);
    await expect(connectRedis({ url: server.url, ...admitCredentials(SECRET, 'nonce-1') })).rejects.toThrow(/refused the credentials/);
    await owner.del([K.config, K.admission, 'opt:m']);
  });

  it('the derived passwords are the roles\' own: a wrong one, or the secret itself, does not log in as them', async () => {
    await expect(connectRedis({ url: server.url, username: 'peerless-functions', password: SECRET })).rejects.toThrow(/refused the credentials/);
    expect(credentialsFor('functions', SECRET).password).not.toBe(credentialsFor('observer', SECRET).password);
    expect(credentialsFor('functions', SECRET)).toEqual(credentialsFor('functions', SECRET));
  });

  it('re-creating the users (after a restart) is idempotent and keeps the rules', async () => {
    await ensureUsers(owner, SECRET);
    const f = await as('functions');
    await refused(f.set('model:params', 'x'));
  });
});
