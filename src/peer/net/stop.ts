import type { Redis } from '../../tensor/redis-client.ts';
import { K } from './keys.ts';

/**
 * Asks every peer of a network to stop after the same round, so all end with identical
 * parameters: the last round is `margin` past the furthest peer's (peers are at most one
 * round apart, and each reads the request when it prepares a round). Returns that round.
 */
export async function requestStop(peers: Redis[], atRound?: number, margin = 2): Promise<number> {
  const rounds = await Promise.all(peers.map(async (c) => Number((await c.get(K.round)) ?? 0)));
  const round = atRound ?? Math.max(...rounds) + margin;
  await Promise.all(peers.map((c) => c.set(K.stopAt, String(round))));
  return round;
}
