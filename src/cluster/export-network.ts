/**
 * The model out of a peer's Redis, live or stopped: `peerless export` and `train
 * --checkpoint-every`. The replicas are identical (checked every round), so one peer's
 * parameters are the network's.
 *
 * A live peer may be updating its parameters in pieces (src/peer/round/update.ts), so the
 * parameters are read only between rounds, or before the round's update starts, and read
 * again when a piece landed meanwhile.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { TrainingConfig } from '../config/training.ts';
import type { Scaling, TargetScaling } from '../data/formats/splits.ts';
import type { SampleSpec } from '../data/spec.ts';
import { DataKeys } from '../data/store.ts';
import { initFunctionBackend } from '../functions/runtime.ts';
import { buildFromTopology, isModelFile } from '../model/custom.ts';
import { exportModel } from '../model/export.ts';
import { buildModel } from '../model/zoo.ts';
import { K } from '../peer/net/keys.ts';
import { readPlan } from '../peer/plan.ts';
import { InDbTensorStore } from '../tensor/in-db.ts';
import { checksum } from '../tensor/reference.ts';
import type { Redis } from '../tensor/redis-client.ts';

/**
 * The parameters as they stood between two updates, and the round they start. Read-only (the
 * observer's user may export): read while no piece of the round's update was applied before
 * or after the read, and the round marker did not move, so no piece landed during it.
 */
async function consistentParams(client: Redis, waitMs: number): Promise<{ params: Float32Array; round: number }> {
  const [prefix, suffix] = K.updatedPiecesAround;
  const updating = async (round: string) => (await client.exists(`${prefix}${round}${suffix}`)) === 1;
  const end = Date.now() + waitMs;
  for (;;) {
    const round = (await client.get(K.round)) ?? '0';
    if (!(await updating(round))) {
      const params = await new InDbTensorStore(client).get(K.params);
      if ((await client.get(K.round) ?? '0') === round && !(await updating(round))) return { params, round: Number(round) };
    }
    if (Date.now() > end) throw new Error(`the peer was updating its parameters for ${waitMs / 1000} s: no moment between updates to copy them`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export interface ExportResult {
  files: string[];
  round: number;
  checksum: string;
}

/**
 * Writes the model of the network whose peer Redis is `client` into `dir` (model.json,
 * weights.bin, metadata.json), as `train --save` does.
 */
export async function exportFromRedis(client: Redis, dir: string, o: { waitMs?: number; config?: TrainingConfig } = {}): Promise<ExportResult> {
  const plan = await readPlan(client);
  if (!plan) throw new Error('this Redis holds no Peerless network (no plan): nothing to export');
  const rawMeta = await client.get(DataKeys.meta);
  const meta = rawMeta ? (JSON.parse(rawMeta) as { samples?: SampleSpec; scaling?: Scaling; classNames?: string[]; targetScaling?: TargetScaling }) : {};
  if (!meta.samples || !meta.scaling) throw new Error(`"${DataKeys.meta}" does not say what a sample is: the network's data was stored by an older Peerless, train it again to export`);
  const config = o.config ?? plan.config;
  await initFunctionBackend();
  const topology = isModelFile(config.model.name) ? await client.get(K.topology) : null;
  if (isModelFile(config.model.name) && topology === null) throw new Error(`missing key "${K.topology}": the peer's Redis holds no model topology`);
  const model = topology ? await buildFromTopology(topology) : buildModel(config.model.name, config.model.width, 0, meta.samples);
  try {
    const { params, round } = await consistentParams(client, o.waitMs ?? 60_000);
    const sum = checksum(params);
    const files = await exportModel(dir, model, params,
      { samples: meta.samples, scaling: meta.scaling, ...(meta.classNames ? { classNames: meta.classNames } : {}), ...(meta.targetScaling ? { targetScaling: meta.targetScaling } : {}) },
      { checksum: sum, testAccuracy: null, rounds: round, config });
    return { files, round, checksum: sum };
  } finally {
    model.dispose();
    tf.disposeVariables();
  }
}
