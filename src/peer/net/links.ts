import { closeRedis, connectRedis, type Redis } from '../../tensor/redis-client.ts';
import { directRoute, type DirectRoute } from '../../tensor/transfer.ts';
import { withTimeout } from '../../platform/retry.ts';
import { admitCredentials, credentialsFor, type Credentials } from './access.ts';
import { K } from './keys.ts';

/**
 * Connections to other peers' Redis servers, one per address, opened on first use.
 * Peers talk only through each other's databases: tensors are streamed into the receiver's
 * Redis (src/tensor/transfer.ts), and small values are written and announced here.
 *
 * A peer that is gone must cost at most the round's deadline: links queue nothing while
 * disconnected (a command fails at once), and every send is bounded by `timeoutMs`.
 */
export class PeerLinks {
  private readonly clients = new Map<string, Promise<Redis>>();
  /** Peers this peer's Redis could not reach itself: their tensors are relayed. */
  private readonly relayOnly = new Set<string>();
  private closed = false;

  /** How long one send may take before the peer counts as unreachable (the round deadline). */
  timeoutMs = 60_000;

  /** The other peers' user (access.ts), on a network with a secret. */
  private readonly login?: Credentials;

  constructor(private readonly secret?: string) {
    this.login = secret ? credentialsFor('peers', secret) : undefined;
  }

  async client(url: string): Promise<Redis> {
    // A late caller (a heartbeat under way as the peer closes) must not open a connection
    // nobody will close: it would keep the process alive after the peer has finished.
    if (this.closed) throw new Error(`peer links closed: not connecting to ${url}`);
    const held = this.clients.get(url);
    if (held) {
      const c = await held.catch(() => null);
      // A client whose reconnect budget ran out stays closed: open a new one (the peer may be back).
      if (c?.isOpen) return c;
      const now = this.clients.get(url);
      if (now && now !== held) return now;
      this.clients.delete(url);
      if (c) void closeRedis(c);
    }
    const fresh = connectRedis({ url, ...this.login }, { connectTimeoutMs: 3_000, failFast: true });
    fresh.catch(() => { if (this.clients.get(url) === fresh) this.clients.delete(url); });
    this.clients.set(url, fresh);
    return fresh;
  }

  /**
   * How this peer's Redis reaches the peer at `url` itself (PL.SEND), as the other peers' user;
   * null over TLS, or once it could not (see `cannotReachDirectly`).
   */
  route(url: string): DirectRoute | null {
    return this.relayOnly.has(url) ? null : directRoute(url, this.login);
  }

  /** This peer's Redis could not connect to `url` itself: relay its tensors until it is forgotten. */
  cannotReachDirectly(url: string): void {
    this.relayOnly.add(url);
  }

  /** `work`, or an error naming the peer once `ms` have passed. */
  timed<T>(work: Promise<T>, ms = this.timeoutMs, url?: string): Promise<T> {
    return withTimeout(work, ms, () => new Error(`peer at ${url ?? 'a peer'} did not answer within ${ms} ms`));
  }

  /**
   * Runs `work` on a connection of its own to a joiner's Redis, as the user that joiner opened
   * for its request `nonce` (access.ts: openForAdmission), bounded by the deadline; the
   * connection is dropped after, so a copy cut off halfway stops there.
   */
  async admitting<T>(url: string, nonce: string, work: (joiner: Redis) => Promise<T>): Promise<T> {
    const login = this.secret ? admitCredentials(this.secret, nonce) : {};
    let joiner: Redis | undefined;
    let over = false;
    const drop = (c?: Redis) => { try { c?.destroy(); } catch { /* already closed */ } };
    try {
      return await this.timed((async () => {
        joiner = await connectRedis({ url, ...login }, { connectTimeoutMs: 3_000, failFast: true });
        if (over) drop(joiner); // connected after the deadline: nobody uses it
        return work(joiner);
      })(), this.timeoutMs, url);
    } finally {
      over = true;
      drop(joiner);
    }
  }

  /** Writes a small string value and announces it. */
  async sendValue(url: string, key: string, value: string, ttlMs?: number): Promise<void> {
    await this.timed((async () => {
      const c = await this.client(url);
      if (ttlMs) await c.set(key, value, { PX: ttlMs });
      else await c.set(key, value);
      await c.publish(K.inbox, key);
    })(), this.timeoutMs, url);
  }

  /** Sends one small value to several peers; a peer that cannot be reached is skipped. */
  async sendToAll(urls: string[], key: string, value: string): Promise<void> {
    await Promise.allSettled(urls.map((u) => this.sendValue(u, key, value)));
  }

  /** Forgets a connection (its peer left or failed), so a rejoin reconnects cleanly. */
  async forget(url: string): Promise<void> {
    const c = this.clients.get(url);
    this.clients.delete(url);
    this.relayOnly.delete(url);
    // Dropped, not closed: a graceful close waits for every pending reply, which from a peer
    // cut off never comes. Its pending commands fail at once.
    if (c) await c.then((client) => { try { client.destroy(); } catch { /* already closed */ } }, () => {});
  }

  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.clients.values()];
    this.clients.clear();
    await Promise.all(all.map((c) => c.then(closeRedis, () => {})));
  }
}
