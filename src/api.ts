/**
 * The library's entry: train a model on a network of peers from your own code, as Keras' `fit`
 * does, and get the trained model back.
 *
 * ```ts
 * import { train } from 'peerless';
 * const { model, summary } = await train({ model: myLayersModel, data: 'idx:./fashion-mnist', peers: 4, rounds: 200 });
 * model.predict(x);
 * ```
 *
 * It starts a local network (a redis-server with the module and a peer per peer, the local
 * platform's worker threads as the functions), trains, and stops it all again. The model comes
 * back with the network's final parameters, to the bit (the replicas' checksum).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as tfl from '@tensorflow/tfjs-layers';
import { runLocalCluster, type ClusterOptions, type ClusterSummary } from './cluster/local-cluster.ts';
import { runFailed, TrainingFailed } from './cluster/run-outcome.ts';
import { parseTrainingConfig, type TrainingConfigInput } from './config/training.ts';
import { loadSavedModel, saveLayersModel } from './model/export.ts';
import type { RoundMetrics } from './peer/types.ts';
import { createPlatform } from './platform/index.ts';
import type { FunctionPlatform } from './platform/platform.ts';

export interface TrainOptions {
  /** A TF.js Layers model (its weights are the initial parameters), a model.json path, or a zoo preset's name. */
  model: tfl.LayersModel | string;
  /** The samples: `mnist` (default), `synthetic`, or `idx:DIR`, `cifar10:DIR`, `npy:DIR`, `csv:FILE`, `images:DIR`. */
  data?: string;
  /** Peers of the local network (default 2). */
  peers?: number;
  /** Rounds to run (default: as many as the configuration's epochs take). */
  rounds?: number;
  optimizer?: TrainingConfigInput['optimizer'];
  /** Where the functions run (default: the local platform, a worker per core). */
  platform?: FunctionPlatform;
  /** Any other setting of the training configuration (the flags' names in camelCase). */
  config?: Partial<TrainingConfigInput>;
  /** Each peer's figures after each round. */
  onRound?: (m: RoundMetrics) => void;
  /** Stops the network at the next round boundary. */
  signal?: AbortSignal;
  /** Whether to load the trained model to return it (default true): the CLI only saves it. */
  returnModel?: boolean;
  /**
   * What a run on the command line adds (`peerless train` is this function with its flags
   * here): credentials, TLS, addresses, a data folder to resume from, a metrics file, a
   * folder to save the model in (besides returning it), checkpoints, a floor on live peers,
   * and each peer's status and log lines.
   */
  network?: Pick<ClusterOptions,
    'password' | 'tls' | 'advertise' | 'bind' | 'metricsFile' | 'dataDir' | 'resume' | 'saveDir' | 'checkpointEvery' | 'minPeers' | 'onStatus' | 'onLog' | 'onPlan'>;
}

export interface TrainResult {
  /** The trained model: the network's final parameters. The caller disposes it. */
  model: tfl.LayersModel;
  summary: ClusterSummary;
}

/**
 * Trains `o.model` on a local network and returns it with the final parameters. A run that
 * fails (a peer failed, the replicas differ, too few peers were left) throws TrainingFailed,
 * whose `summary` says what happened.
 */
export async function train(o: TrainOptions & { returnModel: false }): Promise<Omit<TrainResult, 'model'>>;
export async function train(o: TrainOptions): Promise<TrainResult>;
export async function train(o: TrainOptions): Promise<TrainResult | Omit<TrainResult, 'model'>> {
  // A scratch folder only when needed (a model object to write as model.json, a model to
  // return without a folder of the caller's), removed at the end or at a hard exit.
  let tmp: string | undefined;
  const removeScratch = () => { if (tmp) rmSync(tmp, { recursive: true, force: true }); };
  const scratch = (): string => {
    if (!tmp) {
      tmp = mkdtempSync(join(tmpdir(), 'peerless-train-'));
      process.once('exit', removeScratch);
    }
    return tmp;
  };
  const platform = o.platform ?? await createPlatform({ platform: 'local', workers: availableParallelism() });
  try {
    let name: string;
    if (typeof o.model === 'string') name = o.model;
    else {
      // The network reads a model as a model.json (peers and functions build it from its topology).
      await saveLayersModel(join(scratch(), 'model'), o.model);
      name = join(scratch(), 'model', 'model.json');
    }
    const config = parseTrainingConfig({
      ...o.config,
      model: { ...(o.config?.model ?? {}), name },
      ...(o.data !== undefined ? { dataset: o.data } : {}),
      ...(o.rounds !== undefined ? { maxRounds: o.rounds } : {}),
      ...(o.optimizer ? { optimizer: o.optimizer } : {}),
    });
    const wanted = o.returnModel !== false;
    // The model comes back through the files it is saved as: in the caller's folder, or a
    // temporary one.
    const saveDir = o.network?.saveDir ?? (wanted ? join(scratch(), 'trained') : undefined);
    const summary = await runLocalCluster({
      ...o.network, peers: o.peers ?? 2, config, platform, testEvaluation: true, ...(saveDir ? { saveDir } : {}),
      ...(o.onRound ? { onRound: o.onRound } : {}), ...(o.signal ? { signal: o.signal } : {}),
    });
    if (runFailed(summary)) throw new TrainingFailed(summary);
    if (!o.network?.saveDir) delete summary.saved;
    return wanted ? { model: await loadSavedModel(saveDir!), summary } : { summary };
  } finally {
    if (!o.platform) await platform.close();
    process.off('exit', removeScratch);
    removeScratch();
  }
}

export { TrainingFailed } from './cluster/run-outcome.ts';
export type { ClusterSummary } from './cluster/local-cluster.ts';
export type { TrainingConfigInput } from './config/training.ts';
export type { RoundMetrics } from './peer/types.ts';
export { loadSource, parseSource } from './data/sources.ts';
export { buildModel, MODEL_NAMES } from './model/zoo.ts';
