import type { TrainingConfig } from '../config/training.ts';
import { MNIST_COUNT } from '../data/mnist.ts';

/** Most peers `train` starts on one machine: each is a redis-server and a peer with its connections. */
export const MAX_LOCAL_PEERS = 256;

/**
 * Refuses, before any server starts, a local network this machine or this data cannot hold:
 * more peers than MAX_LOCAL_PEERS, or than training samples (every shard needs one).
 */
export function checkLocalPeers(config: TrainingConfig, peers: number): void {
  if (!Number.isInteger(peers) || peers < 1) throw new Error(`--peers must be a positive integer, got ${peers}`);
  if (peers > MAX_LOCAL_PEERS) {
    throw new Error(`--peers ${peers}: a local run starts a redis-server and a peer per peer on this machine, at most ${MAX_LOCAL_PEERS}; for more, run \`peerless peer\` on more machines`);
  }
  // Your own data's size is known once it is loaded; splitData says so then.
  if (config.dataset !== 'mnist' && config.dataset !== 'synthetic') return;
  const available = (config.dataset === 'mnist' ? MNIST_COUNT.train : config.syntheticSize) - config.validationSize;
  const train = config.trainSamples > 0 ? Math.min(config.trainSamples, available) : available;
  if (train < peers) throw new Error(`--peers ${peers}: ${train} training samples cannot give every peer a shard`);
}
