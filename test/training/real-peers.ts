import { afterAll, beforeAll } from 'vitest';
import { startRedisServer, type RedisServer } from '../../src/cluster/redis-server.ts';
import { closeRedis, connectRedis, type Redis } from '../../src/tensor/redis-client.ts';
import { DirectSender } from '../../src/tensor/transfer.ts';
import { Inbox } from '../../src/peer/net/inbox.ts';
import { PeerLinks } from '../../src/peer/net/links.ts';
import type { MemberRecord } from '../../src/peer/net/membership.ts';

/** What an exchange between real peers needs of each: its Redis, inbox, links and sender. */
export interface RealPeers {
  servers: RedisServer[];
  clients: Redis[];
  inboxes: Inbox[];
  links: PeerLinks[];
  senders: DirectSender[];
  /** p0, p1, ... in canonical order, one per server. */
  members: MemberRecord[];
}

/**
 * `n` peers' redis-servers on loopback for a spec file, started before its tests and stopped
 * after them; the round phases run between them for real.
 */
export function useRealPeers(n: number): RealPeers {
  const p = { servers: [], clients: [], inboxes: [], links: [], senders: [], members: [] } as RealPeers;
  beforeAll(async () => {
    p.servers.push(...await Promise.all(Array.from({ length: n }, () => startRedisServer())));
    p.clients.push(...await Promise.all(p.servers.map((s) => connectRedis({ url: s.url }))));
    p.inboxes.push(...p.clients.map((c) => new Inbox(c)));
    await Promise.all(p.inboxes.map((i) => i.start()));
    p.links.push(...p.servers.map(() => new PeerLinks()));
    p.senders.push(...p.servers.map((s) => new DirectSender({ url: s.url })));
    p.members.push(...p.servers.map((s, i) => ({ id: `p${i}`, url: s.url, fromRound: 0 })));
  });
  afterAll(async () => {
    await Promise.all(p.inboxes.map((i) => i.stop()));
    await Promise.all(p.links.map((l) => l.close()));
    await Promise.all(p.senders.map((d) => d.close()));
    await Promise.all(p.clients.map(closeRedis));
    await Promise.all(p.servers.map((s) => s.stop()));
  });
  return p;
}

/** A reproducible vector of `n` values in [-scale, scale) (a linear congruential generator). */
export function seededVector(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) { s = (s * 1664525 + 1013904223) >>> 0; out[i] = (s / 2 ** 32 - 0.5) * 2 * scale; }
  return out;
}
