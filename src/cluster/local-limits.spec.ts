import { describe, expect, it } from 'vitest';
import { parseTrainingConfig } from '../config/training.ts';
import { checkLocalPeers, MAX_LOCAL_PEERS } from './local-limits.ts';

describe('the peers a local run may start', () => {
  const mnist = parseTrainingConfig({ model: { name: 'cnn' } });
  it('refuses, before anything starts, more peers than the machine or the data can hold', () => {
    expect(() => checkLocalPeers(mnist, 1_000_000_000)).toThrow(`--peers 1000000000: a local run starts a redis-server and a peer per peer on this machine, at most ${MAX_LOCAL_PEERS}; for more, run \`peerless peer\` on more machines`);
    const small = parseTrainingConfig({ model: { name: 'cnn' }, dataset: 'synthetic', syntheticSize: 300, validationSize: 200 });
    expect(() => checkLocalPeers(small, 101)).toThrow('--peers 101: 100 training samples cannot give every peer a shard');
    expect(() => checkLocalPeers(mnist, 0)).toThrow('--peers must be a positive integer, got 0');
  });
  it('lets the rest through', () => {
    expect(() => checkLocalPeers(mnist, 4)).not.toThrow();
    expect(() => checkLocalPeers(mnist, MAX_LOCAL_PEERS)).not.toThrow();
  });
});
