import type { Redis } from '../../tensor/redis-client.ts';
import { AVERAGED_CHANNEL } from '../../tensor/tensor-store.ts';
import { K } from './keys.ts';

/**
 * Waits for keys that other peers write into this peer's Redis. Senders PUBLISH the key
 * name (never the value) on the inbox channel after writing; a periodic EXISTS covers a
 * message lost while subscribing, or a sender that crashed between write and publish.
 */
export class Inbox {
  private readonly waiters = new Set<() => void>();
  private subscriber?: Redis;

  constructor(private readonly client: Redis) {}

  async start(): Promise<void> {
    this.subscriber = this.client.duplicate() as Redis;
    this.subscriber.on('error', () => {});
    await this.subscriber.connect();
    // Other peers announce what they wrote; the module announces a completed average.
    await this.subscriber.subscribe([K.inbox, AVERAGED_CHANNEL], () => this.wake());
  }

  private wake(): void {
    for (const w of this.waiters) w();
  }

  /**
   * Resolves with the keys present by the deadline (all of them, as soon as they are). A key
   * whose `withdrawn(key)` key appears is waited for no longer, and counted missing: its
   * writer said it will not come (a member that sits the round out).
   */
  async waitFor(keys: string[], deadlineMs: number, o: { pollMs?: number; withdrawn?: (key: string) => string } = {}): Promise<{ present: string[]; missing: string[] }> {
    const pending = new Set(keys);
    const present = new Set<string>();
    const withdrawn = o.withdrawn;
    await this.until(async () => {
      if (pending.size === 0) return true;
      const list = [...pending];
      // EXISTS, never GET: a key may be large, and only its presence is asked.
      const [found, gone] = await Promise.all([
        Promise.all(list.map((k) => this.client.exists(k))),
        withdrawn ? Promise.all(list.map((k) => this.client.exists(withdrawn(k)))) : [],
      ]);
      list.forEach((k, i) => {
        if (Number(found[i]) === 1) present.add(k);
        if (Number(found[i]) === 1 || Number(gone[i]) === 1) pending.delete(k);
      });
      return pending.size === 0 ? true : null;
    }, deadlineMs, o.pollMs);
    return { present: keys.filter((k) => present.has(k)), missing: keys.filter((k) => !present.has(k)) };
  }

  /**
   * Runs `probe` now, again whenever a key is announced (or every `pollMs`), until it
   * returns a value other than null or the deadline passes (then null).
   */
  async until<T>(probe: () => Promise<T | null>, deadlineMs: number, pollMs = 250): Promise<T | null> {
    const end = Date.now() + deadlineMs;
    let found = await probe();
    while (found === null && Date.now() < end) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, Math.min(pollMs, Math.max(0, end - Date.now())));
        function done() { clearTimeout(timer); waiters.delete(done); resolve(); }
        const waiters = this.waiters;
        waiters.add(done);
      });
      found = await probe();
    }
    return found;
  }

  async stop(): Promise<void> {
    this.wake();
    if (this.subscriber) {
      try { await this.subscriber.close(); } catch { this.subscriber.destroy(); }
    }
  }
}
