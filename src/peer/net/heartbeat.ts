import type { Redis } from '../../tensor/redis-client.ts';
import { K } from './keys.ts';

/**
 * Heartbeats: every peer writes the time into every member's Redis, a few times per deadline.
 * `peerless status` shows their age; a peer waiting for a round's coordinator watches the
 * coordinator's, to give a dead one up without waiting out the time a live one may take.
 */

/** How often a peer beats: eight times per deadline, at most once a second. */
export function heartbeatEvery(deadlineMs: number): number {
  return Math.max(50, Math.min(1_000, Math.floor(deadlineMs / 8)));
}

/** How long a heartbeat must stand still before its peer is taken for dead: half a deadline (four beats or more). */
export function heartbeatStaleAfter(deadlineMs: number): number {
  return Math.max(4 * heartbeatEvery(deadlineMs), Math.floor(deadlineMs / 2));
}

/**
 * How long a beat outlives its writer: three deadlines, ten beats at least. A watcher first
 * looks when it reaches the round's agreement, up to a deadline (its own wait for another
 * member) after the writer died; a key expired by then would prove nothing, and the watcher
 * would wait out two deadlines instead of half of one.
 */
export function heartbeatTtl(deadlineMs: number): number {
  return Math.max(10 * heartbeatEvery(deadlineMs), 3 * deadlineMs);
}

/**
 * Writes this peer's heartbeat into each Redis `targets` gives (one connection each, so one
 * unreachable member costs only its own beat), every `heartbeatEvery(deadlineMs)`; a missed
 * beat is not an error. The returned stop also ends a beat under way before it opens more
 * connections.
 */
export function startHeartbeat(id: string, deadlineMs: number, targets: () => Promise<Promise<Redis>[]>): () => void {
  let stopped = false;
  const ttl = heartbeatTtl(deadlineMs);
  const beat = async () => {
    try {
      const now = String(Date.now());
      const to = await targets();
      if (stopped) {
        // Stopped meanwhile (the peer closing): its links refuse to connect now, and those
        // refusals must not go unhandled, which ends the process.
        await Promise.allSettled(to);
        return;
      }
      await Promise.allSettled(to.map(async (c) => (await c).set(K.heartbeat(id), now, { PX: ttl })));
    } catch {
      // The round deadline decides who is gone; a beat is only a hint that comes sooner.
    }
  };
  void beat();
  const timer = setInterval(beat, heartbeatEvery(deadlineMs));
  timer.unref();
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}

/**
 * Watches peer `id`'s heartbeat in this peer's own Redis. The returned probe answers how long
 * the beat has stood still, measured on this peer's clock from the first time it looked (the
 * value is the writer's clock, only compared for change, so clocks need not agree), up to
 * its last read: a verdict always rests on what Redis said. A key absent from the first look
 * proves nothing (the peer may not beat here yet): it answers 0. Only time this peer was
 * looking counts: a gap of more than `maxGapMs` between two looks (this process stalled, and
 * with it, in a network run in one process, the writer's timer) starts the count again, so a
 * stall is never taken for a death. It reads Redis at most once per `readEveryMs`: a waiter
 * probed at every key the inbox announces would otherwise double its reads for a figure that
 * moves once a beat.
 */
export function watchHeartbeat(local: Redis, id: string, maxGapMs = 500, readEveryMs = 200): () => Promise<number> {
  let seen: string | null | undefined;
  let since = Date.now();
  let looked = since;
  return async () => {
    if (seen !== undefined && Date.now() - looked < readEveryMs) return seen === null ? 0 : looked - since;
    const now = await local.get(K.heartbeat(id));
    const t = Date.now();
    if (seen === undefined || (now !== null && now !== seen) || t - looked > maxGapMs) {
      if (seen === undefined || now !== null) seen = now;
      since = t;
    }
    looked = t;
    return seen === null ? 0 : t - since;
  };
}
