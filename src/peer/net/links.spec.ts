import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedisServer, type RedisServer } from '../../cluster/redis-server.ts';
import { PeerLinks } from './links.ts';

describe('links to other peers (a real redis-server)', () => {
  let server: RedisServer;
  beforeAll(async () => { server = await startRedisServer(); });
  afterAll(async () => { await server.stop(); });

  it('once closed, open no connection: a late caller gets a clear error, not a socket that keeps the process alive', async () => {
    const links = new PeerLinks();
    const c = await links.client(server.url);
    expect(await c.ping()).toBe('PONG');
    await links.close();
    expect(c.isOpen).toBe(false);
    await expect(links.client(server.url)).rejects.toThrow(`peer links closed: not connecting to ${server.url}`);
  });
});
