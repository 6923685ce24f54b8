import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedisServer, type RedisServer } from '../../cluster/redis-server.ts';
import { toBytes } from '../../tensor/bytes.ts';
import { closeRedis, connectRedis, type Redis } from '../../tensor/redis-client.ts';
import { credentialsFor, ensureUsers } from './access.ts';

// The users a peer creates in its own Redis when the network has a password, on a real
// redis-server with the module: what each may do, and what it is refused.
const SECRET = 'network-secret';
let server: RedisServer;
let owner: Redis;
const opened: Redis[] = [];

async function as(role: 'functions' | 'observer'): Promise<Redis> {
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
    await refused(o.set('peerless:members', 'x'));
    await refused(o.sendCommand(['PL.SCALE', 'model:params', '2']));
    await refused(o.sendCommand(['CONFIG', 'SET', 'maxmemory', '1']));
    await refused(o.sendCommand(['FLUSHDB']));
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
