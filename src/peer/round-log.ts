import type { Redis } from '../tensor/redis-client.ts';
import { K } from './net/keys.ts';
import type { RoundMetrics } from './types.ts';

/**
 * What a peer records of each round in its own Redis, for dashboards that attach to a running
 * network (`peerless dashboard --redis`): the figures a page draws, in a capped stream, so a
 * late reader gets the history and then follows it (XRANGE, then XREAD).
 */
export interface RoundPoint {
  peer: string;
  round: number;
  loss: number;
  accuracy: number;
  validationAccuracy: number | null;
  roundMs: number;
  bytesReceived: number;
  members: string[];
  dropped: string[];
}

/** Rounds kept per peer (about 1 MB of stream). */
export const ROUND_LOG_LENGTH = 10_000;

export function roundPoint(m: RoundMetrics): RoundPoint {
  return {
    peer: m.peer, round: m.round, loss: m.loss, accuracy: m.accuracy, validationAccuracy: m.validationAccuracy ?? null,
    roundMs: m.roundMs, bytesReceived: m.bytesReceived, members: m.members, dropped: m.dropped,
  };
}

/** Appends a round to the peer's log (trimmed to about ROUND_LOG_LENGTH entries). */
export async function recordRound(local: Redis, m: RoundMetrics): Promise<void> {
  await local.sendCommand(['XADD', K.roundLog, 'MAXLEN', '~', String(ROUND_LOG_LENGTH), '*', 'm', JSON.stringify(roundPoint(m))]);
}
