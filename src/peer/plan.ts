import type { TrainingConfig } from '../config/training.ts';
import type { Redis } from '../tensor/redis-client.ts';
import { K } from './net/keys.ts';

/**
 * The version of what peers keep in Redis and send each other (key names, the exact-sum
 * layout, reports, admissions). A peer refuses state or a network of another version.
 * 2: exact sums (16 bytes an element), membership views and admissions.
 * 3: chunked gradient pushes (PL.PUSH, staging slots); the exchange's mean summed in name order.
 * 4: exchange 'sharded-step' (the optimizer state sharded by K.optimizerLayout).
 * 5: the parameters' checksum hashes 8 interleaved lanes per block (PL.CHECKSUM, 10x faster).
 *    Peers of 3 or 4 would compute other checksums and repair each other every round, so a
 *    network of 3 or 4 is neither joined nor resumed, and every network is written as 5.
 */
export const PROTOCOL = 5;

/** The versions this Peerless reads (see PROTOCOL). */
const READS = [PROTOCOL];

/** What the founding peer stores next to the configuration: the plan every peer follows. */
export interface NetworkPlan {
  /** PROTOCOL of the peer that founded the network (absent before version 2). */
  protocol?: number;
  config: TrainingConfig;
  roundsPerEpoch: number;
  layoutHash: string;
  length: number;
  /** Random id of the network, given by its founder. */
  network?: string;
}

/** A one-line error when `plan` was written by another protocol version, else null. */
export function protocolMismatch(plan: NetworkPlan, where: string): string | null {
  const theirs = plan.protocol ?? 1;
  if (READS.includes(theirs)) return null;
  return `${where} holds a network of protocol version ${theirs}, and this Peerless speaks ${READS.length > 1 ? `versions ${READS.join(' and ')}` : `version ${READS[0]}`}: ${theirs < PROTOCOL ? 'start a new run (or use the Peerless that made it)' : 'upgrade this Peerless'}`;
}

/** The network's plan kept in a peer's Redis, or null where no network is. */
export async function readPlan(client: Redis): Promise<NetworkPlan | null> {
  const raw = await client.get(K.config);
  return raw ? (JSON.parse(raw) as NetworkPlan) : null;
}
