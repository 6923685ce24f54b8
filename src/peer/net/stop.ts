import type { Redis } from '../../tensor/redis-client.ts';
import { K } from './keys.ts';

/**
 * Asks every peer of a network to stop after the same round, so all end with identical
 * parameters. The request goes to every member; whichever coordinates a round boundary
 * first puts it in its view, and every member then stops after the same round: the one
 * asked for (`margin` past the furthest peer's by default), or the first one still ahead
 * when the request arrived late. Returns the round asked for.
 */
export async function requestStop(peers: Redis[], atRound?: number, margin = 2): Promise<number> {
  const rounds = await Promise.all(peers.map(async (c) => Number((await c.get(K.round)) ?? 0)));
  const round = atRound ?? Math.max(...rounds) + margin;
  await Promise.all(peers.map((c) => c.set(K.stopRequest, String(round))));
  return round;
}
