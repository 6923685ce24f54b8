import { closeRedis, connectRedis, type Redis } from '../tensor/redis-client.ts';
import { K } from './keys.ts';

/**
 * Connections to other peers' Redis servers, one per address, opened on first use.
 * Peers talk only through each other's databases: tensors are written into the receiver's
 * Redis, and the key name is published on its inbox channel.
 */
export class PeerLinks {
  private readonly clients = new Map<string, Promise<Redis>>();
  bytesSent = 0;

  constructor(private readonly password?: string) {}

  client(url: string): Promise<Redis> {
    let c = this.clients.get(url);
    if (!c) {
      c = connectRedis({ url, password: this.password }, { connectTimeoutMs: 3_000 });
      c.catch(() => this.clients.delete(url));
      this.clients.set(url, c);
    }
    return c;
  }

  /** Writes a tensor (already validated bytes) into another peer's Redis and announces it. */
  async sendTensor(url: string, key: string, bytes: Buffer): Promise<void> {
    const c = await this.client(url);
    await c.sendCommand(['PL.SET', key, bytes]);
    await c.publish(K.inbox, key);
    this.bytesSent += bytes.length;
  }

  /** Writes a small string value and announces it. */
  async sendValue(url: string, key: string, value: string, ttlMs?: number): Promise<void> {
    const c = await this.client(url);
    if (ttlMs) await c.set(key, value, { PX: ttlMs });
    else await c.set(key, value);
    await c.publish(K.inbox, key);
  }

  /** Forgets a connection (its peer left or failed), so a rejoin reconnects cleanly. */
  async forget(url: string): Promise<void> {
    const c = this.clients.get(url);
    this.clients.delete(url);
    if (c) await c.then(closeRedis, () => {});
  }

  async close(): Promise<void> {
    const all = [...this.clients.values()];
    this.clients.clear();
    await Promise.all(all.map((c) => c.then(closeRedis, () => {})));
  }
}
