import type { Redis } from '../../tensor/redis-client.ts';
import { ensureTensor, streamTensor } from '../../tensor/transfer.ts';
import { K } from './keys.ts';

/** The keys that make a replica of the model: parameters, optimizer state, progress. */
const TENSORS = [K.params, K.velocity, K.adamM, K.adamV];
const VALUES = [K.adamStep, K.progress];

/**
 * Copies the training state from one peer's Redis into another's: how a joining peer
 * catches up, and how a peer whose checksum disagrees is repaired. Tensors travel through
 * the streamed transfer path into keys kept at full size (a repair reuses the destination's
 * memory); what the source lacks is removed at the destination, so nothing stale survives.
 */
export async function copyTrainingState(from: Redis, to: Redis): Promise<number> {
  let bytes = 0;
  for (const key of TENSORS) {
    const len = Number(await from.strLen(key)) / 4;
    if (len === 0) { await to.del(key); continue; }
    await ensureTensor(to, key, len);
    bytes += await streamTensor(from, key, 0, len, to, key, 0);
  }
  for (const key of VALUES) {
    const v = await from.get(key);
    if (v === null) await to.del(key);
    else await to.set(key, v);
  }
  return bytes;
}
