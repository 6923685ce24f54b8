import type { Redis } from '../../tensor/redis-client.ts';
import { AVERAGED_CHANNEL } from '../../tensor/tensor-store.ts';
import { K } from './keys.ts';

/** Announced key names kept to check waiters against: more than a round ever announces to one peer. */
const REMEMBERED = 4096;

/**
 * Waits for keys that other peers write into this peer's Redis. Senders PUBLISH the key
 * name (never the value) on the inbox channel after writing, on the connection that wrote
 * it, so an announced key is there: a waiter takes the announcement as the key's presence,
 * with no round trip. A probe of every pending key (EXISTS) runs when a wait starts, and
 * then every `pollMs` and at any other wake: it covers a message lost while subscribing, a
 * sender that crashed between write and publish, and keys written without announcement.
 */
export class Inbox {
  private readonly waiters = new Set<(announced: string | null) => void>();
  /** Key names announced so far (the latest REMEMBERED), with the number of their last announcement. */
  private readonly announced = new Map<string, number>();
  private announcements = 0;
  private subscriber?: Redis;

  constructor(private readonly client: Redis) {}

  async start(): Promise<void> {
    this.subscriber = this.client.duplicate() as Redis;
    this.subscriber.on('error', () => {});
    await this.subscriber.connect();
    // Other peers announce what they wrote; the module announces a completed average.
    await this.subscriber.subscribe([K.inbox, AVERAGED_CHANNEL], (message, channel) => {
      if (channel !== K.inbox) return this.wake(null);
      this.remember(String(message));
      this.wake(String(message));
    });
  }

  private remember(key: string): void {
    this.announced.delete(key);
    this.announced.set(key, ++this.announcements);
    if (this.announced.size > REMEMBERED) this.announced.delete(this.announced.keys().next().value!);
  }

  /** Wakes every waiter: with the key an inbox message announced, or null (probe everything). */
  private wake(announced: string | null): void {
    for (const w of this.waiters) w(announced);
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
    // Announcements made since the wait began settle keys without a round trip, those that
    // came while a probe was out too. Earlier ones are not trusted: a key name can be used
    // again (a joiner's admission), and the first probe finds a key that is still there.
    const since = this.announcements;
    const isNew = (k: string) => (this.announced.get(k) ?? 0) > since;
    const settleAnnounced = () => {
      for (const k of pending) {
        if (isNew(k)) present.add(k);
        if (isNew(k) || (withdrawn && isNew(withdrawn(k)))) pending.delete(k);
      }
    };
    await this.until(async (announced) => {
      settleAnnounced();
      if (pending.size === 0) return true;
      if (announced !== null) return null; // another key's announcement: nothing to ask the server
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
      settleAnnounced();
      return pending.size === 0 ? true : null;
    }, deadlineMs, o.pollMs);
    return { present: keys.filter((k) => present.has(k)), missing: keys.filter((k) => !present.has(k)) };
  }

  /**
   * Runs `probe` now (with null), again whenever an inbox message announces a key (with the
   * key) or at any other wake or every `pollMs` (with null), until it returns a value other
   * than null or the deadline passes (then null).
   */
  async until<T>(probe: (announced: string | null) => Promise<T | null>, deadlineMs: number, pollMs = 250): Promise<T | null> {
    const end = Date.now() + deadlineMs;
    let found = await probe(null);
    while (found === null && Date.now() < end) {
      const announced = await new Promise<string | null>((resolve) => {
        const timer = setTimeout(() => done(null), Math.min(pollMs, Math.max(0, end - Date.now())));
        function done(key: string | null) { clearTimeout(timer); waiters.delete(done); resolve(key); }
        const waiters = this.waiters;
        waiters.add(done);
      });
      found = await probe(announced);
    }
    return found;
  }

  async stop(): Promise<void> {
    this.wake(null);
    if (this.subscriber) {
      try { await this.subscriber.close(); } catch { this.subscriber.destroy(); }
    }
  }
}
