import type { OptimizerConfig } from '../../config/training.ts';
import { adamCommand, sgdCommand } from '../../tensor/in-db.ts';
import type { Redis } from '../../tensor/redis-client.ts';
import { K } from '../net/keys.ts';
import type { ModelInfo } from '../types.ts';

export interface UpdateInput {
  peer: string;
  round: number;
  local: Redis;
  optimizer: OptimizerConfig;
  /** The round's learning rate (the schedule's, from the plan). */
  lr: number;
  model: ModelInfo;
}

/**
 * The update phase: the optimizer step on the round's aggregate, inside the database,
 * atomically with the round marker, so a restarted peer never applies one round's update
 * twice. Slots past `trainable` (batch-norm statistics) take the aggregated value instead of
 * a step, copied inside the database in the same MULTI. Returns false when the round's update
 * was already applied.
 */
export async function applyUpdate(x: UpdateInput): Promise<boolean> {
  if (Number((await x.local.get(K.round)) ?? 0) > x.round) return false;
  const o = x.optimizer, lr = x.lr;
  const agg = K.aggregate(x.round);
  const tx = x.local.multi();
  tx.addCommand(o.kind === 'sgd'
    ? sgdCommand(K.params, agg, K.velocity, { ...o, lr })
    : adamCommand(K.params, agg, K.adamM, K.adamV, K.adamStep, { ...o, lr }));
  const { length, trainable } = x.model;
  if (trainable < length) tx.addCommand(['PL.COPYRANGE', K.params, String(trainable), agg, String(trainable), String(length - trainable)]);
  tx.set(K.round, String(x.round + 1));
  const replies = await tx.exec();
  const failed = replies.find((r) => r instanceof Error);
  if (failed) throw new Error(`peer ${x.peer}: update of round ${x.round} failed: ${(failed as Error).message}`);
  return true;
}
