import type { Redis } from '../../tensor/redis-client.ts';
import { ensureTensor, streamTensor } from '../../tensor/transfer.ts';
import { readPlan } from '../plan.ts';
import { K } from './keys.ts';

/** The keys that make a replica of the model: parameters, optimizer state, progress. */
const PARAMS = [K.params];
const OPTIMIZER = [K.velocity, K.adamM, K.adamV];
const VALUES = [K.adamStep, K.progress];

/**
 * Copies the training state from one peer's Redis into another's: how a joining peer
 * catches up, and how a peer whose checksum disagrees is repaired. Tensors travel through
 * the streamed transfer path into keys kept at full size (a repair reuses the destination's
 * memory); what the source lacks is removed at the destination, so nothing stale survives.
 *
 * With exchange 'sharded-step' the source holds the optimizer state of its own slice only, so
 * none is copied: the destination keeps its own slice's (a repair), or fetches its slice's from
 * the owners at its first round (a joiner: optimizer-slices.ts).
 */
export async function copyTrainingState(from: Redis, to: Redis): Promise<number> {
  let bytes = 0;
  const sharded = (await readPlan(from))?.config.exchange === 'sharded-step';
  for (const key of sharded ? PARAMS : [...PARAMS, ...OPTIMIZER]) {
    const len = Number(await from.strLen(key)) / 4;
    if (len === 0) { await to.del(key); continue; }
    await ensureTensor(to, key, len);
    bytes += await streamTensor(from, key, 0, len, to, key, 0);
  }
  // A joiner that was a member before may hold a layout record equal to the round's, with
  // state from then: the record goes, so its first round fetches its slice's state afresh.
  if (sharded) await to.del(K.optimizerLayout);
  for (const key of VALUES) {
    const v = await from.get(key);
    if (v === null) await to.del(key);
    else await to.set(key, v);
  }
  return bytes;
}
