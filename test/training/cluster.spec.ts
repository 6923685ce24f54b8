import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { getFlatParams } from '../../src/model/flat.ts';
import { checksum } from '../../src/tensor/reference.ts';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runLocalCluster, type ClusterSummary } from '../../src/cluster/local-cluster.ts';
import { parseTrainingConfig, type TrainingConfigInput } from '../../src/config/training.ts';
import { credentialsFor } from '../../src/peer/net/access.ts';
import { startRedisServer } from '../../src/cluster/redis-server.ts';
import { makeLocalTls } from '../../src/cluster/tls.ts';
import { connectRedis, TLS_CA_ENV } from '../../src/tensor/redis-client.ts';
import { LocalPlatform } from '../../src/platform/local/local-platform.ts';
import { useLocalPlatform } from './local-platform-fixture.ts';
import type { RoundMetrics } from '../../src/peer/types.ts';

/**
 * Whole training runs on this machine: real redis-servers with the module, real peers, the
 * real local platform (worker threads running the gradient and evaluate functions), on the
 * seeded synthetic dataset so a run takes seconds.
 */
const platformOf = useLocalPlatform();

const base: TrainingConfigInput = {
  model: { name: 'cnn', width: 0.25 },
  dataset: 'synthetic',
  syntheticSize: 1536,
  batchSize: 64,
  batchesPerRound: 2,
  epochs: 4,
  checkEvery: 4,
  validationSize: 256,
  optimizer: { kind: 'adam', lr: 0.003 },
  seed: 7,
  deadlineMs: 20_000,
};

async function run(peers: number, over: Partial<TrainingConfigInput> = {}): Promise<{ summary: ClusterSummary; rounds: RoundMetrics[] }> {
  const rounds: RoundMetrics[] = [];
  const summary = await runLocalCluster({ peers, config: parseTrainingConfig({ ...base, ...over }), platform: platformOf(), onRound: (m) => rounds.push(m) });
  return { summary, rounds };
}

describe('a local cluster of peers', () => {
  it('saves the trained model: TF.js loads it, and its parameters are the network\'s to the bit', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'peerless-save-'));
    try {
      const config = parseTrainingConfig({ ...base, model: { name: 'resnet18', width: 0.125 }, batchSize: 32, batchesPerRound: 1, maxRounds: 2 });
      const summary = await runLocalCluster({ peers: 2, config, platform: platformOf(), saveDir: dir });
      expect(summary.saved).toEqual(['model.json', 'weights.bin', 'metadata.json'].map((f) => join(dir, f)));
      const json = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8')) as { format: string; modelTopology: object; weightsManifest: { weights: tf.io.WeightsManifestEntry[] }[] };
      expect(json.format).toBe('layers-model');
      const weights = readFileSync(join(dir, 'weights.bin'));
      const loaded = await tfl.loadLayersModel(tf.io.fromMemory({
        modelTopology: json.modelTopology, weightSpecs: json.weightsManifest[0]!.weights,
        weightData: weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.byteLength),
      }));
      try {
        // Batch-norm statistics included: the whole flat vector, byte for byte.
        expect(checksum(getFlatParams(loaded))).toBe(summary.checksums[0]);
      } finally {
        loaded.dispose();
      }
      const meta = JSON.parse(readFileSync(join(dir, 'metadata.json'), 'utf8')) as Record<string, unknown>;
      expect(meta).toMatchObject({ checksum: summary.checksums[0], rounds: 2, classNames: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
        input: { shape: [28, 28, 1], scaling: { kind: 'divide', by: 255 } }, config: { model: { name: 'resnet18', width: 0.125 } } });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('trains over TLS: every Redis serves rediss:// only, peers and functions trust the run\'s CA; plain text, an unknown CA and a certificate for another host are refused', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'peerless-tls-'));
    const before = process.env[TLS_CA_ENV];
    let tlsPlatform: LocalPlatform | undefined;
    try {
      const tls = makeLocalTls(dir);
      process.env[TLS_CA_ENV] = tls.ca; // new function workers inherit it
      tlsPlatform = new LocalPlatform({ workers: 1 });
      await tlsPlatform.warm();
      const summary = await runLocalCluster({ peers: 2, tls, config: parseTrainingConfig({ ...base, maxRounds: 2 }), platform: tlsPlatform });
      expect(summary.outcomes.map((o) => o.state)).toEqual(['done', 'done']);
      expect(summary.identical).toBe(true);
      // Nothing answers in plain text, and TLS without the CA is refused.
      const server = await startRedisServer({ tls, loadModule: false });
      try {
        expect(server.url).toMatch(/^rediss:\/\//);
        await expect(connectRedis({ url: server.url.replace('rediss:', 'redis:') }, { connectTimeoutMs: 1_000 })).rejects.toThrow(/cannot reach Redis/);
        delete process.env[TLS_CA_ENV];
        // Refused at the handshake, at once: a long bound, so a slow handshake on a loaded machine is not a timeout instead.
        await expect(connectRedis({ url: server.url }, { connectTimeoutMs: 60_000 })).rejects.toThrow(/cannot reach Redis.*(certificate|self.signed)/i);
      } finally {
        await server.stop();
      }
      // A certificate the run's CA signed, but for another host: refused, naming the mismatch.
      const otherDir = join(dir, 'other');
      mkdirSync(otherDir);
      const other = makeLocalTls(otherDir, ['DNS:redis.other.example']);
      const misnamed = await startRedisServer({ tls: other, loadModule: false });
      process.env[TLS_CA_ENV] = other.ca;
      try {
        await expect(connectRedis({ url: misnamed.url }, { connectTimeoutMs: 60_000 })).rejects.toThrow(/cannot reach Redis.*(altnames|does not match|not in the cert)/i);
      } finally {
        await misnamed.stop();
      }
    } finally {
      if (before === undefined) delete process.env[TLS_CA_ENV];
      else process.env[TLS_CA_ENV] = before;
      await tlsPlatform?.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('writes the effective configuration as the metrics file\'s first line, and every round line with its time and peer', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'peerless-metrics-'));
    try {
      const file = join(dir, 'rounds.jsonl');
      const summary = await runLocalCluster({ peers: 2, config: parseTrainingConfig({ ...base, maxRounds: 2, batchesPerRound: 0 }), platform: platformOf(), metricsFile: file });
      const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines[0]).toMatchObject({ type: 'config', resume: false, config: summary.config });
      // --rounds fitted the batches per round: the line holds what the run used, not what was asked.
      expect((lines[0]!.config as { batchesPerRound: number }).batchesPerRound).toBeGreaterThan(0);
      const rounds = lines.slice(1);
      expect(rounds.length).toBe(2 * 2);
      for (const r of rounds) {
        expect(r).toMatchObject({ type: 'round', peer: expect.stringMatching(/^peer-0[01]$/) });
        expect(Number.isNaN(Date.parse(String(r.at)))).toBe(false);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('with a network password, trains: peers reach each other as the peers\' user with no drop, and the functions log in as their own user, from their environment, never from events', async () => {
    const secured = new LocalPlatform({ workers: 1, redisCredentials: credentialsFor('functions', 's3cret') });
    try {
      await secured.warm();
      // Every event the peers send, as the functions receive it.
      const events: unknown[] = [];
      const invoke = secured.invoke.bind(secured);
      secured.invoke = (async (name: never, event: never) => { events.push(event); return invoke(name, event); }) as typeof secured.invoke;
      const rounds: RoundMetrics[] = [];
      const summary = await runLocalCluster({ peers: 2, password: 's3cret', config: parseTrainingConfig({ ...base, maxRounds: 2 }), platform: secured, onRound: (m) => rounds.push(m) });
      expect(summary.outcomes.map((o) => o.state)).toEqual(['done', 'done']);
      expect(summary.identical).toBe(true);
      // Each peer received the other's average every round (a refused write would drop it).
      expect(rounds.length).toBe(4);
      for (const m of rounds) {
        expect(m.members).toHaveLength(2);
        expect(m.dropped).toEqual([]);
        expect(m.bytesReceived).toBeGreaterThan(0);
        expect(m.repaired).toBe(false);
      }
      expect(events.length).toBeGreaterThan(0);
      expect(JSON.stringify(events)).not.toContain('s3cret');
    } finally {
      await secured.close();
    }
  });

  it('3 peers on synthetic data converge, agree every round, and stop together', async () => {
    const { summary, rounds } = await run(3, { targetAccuracy: 0.9 });
    expect(summary.outcomes.map((o) => o.state)).toEqual(['done', 'done', 'done']);
    expect(summary.identical).toBe(true);
    expect(summary.lastValidationAccuracy).toBeGreaterThanOrEqual(0.9);
    expect(summary.stopReason).toMatch(/reached the target/);
    // Every round, every peer reported the same checksum, and nobody needed a repair.
    const byRound = new Map<number, Set<string>>();
    for (const m of rounds) byRound.set(m.round, (byRound.get(m.round) ?? new Set()).add(m.checksum));
    for (const [, sums] of byRound) expect(sums.size).toBe(1);
    expect(rounds.some((m) => m.repaired)).toBe(false);
    // The plan fixed the backend the local functions loaded, and every gradient used it.
    expect(platformOf().computeBackend).toMatch(/^(native|wasm)$/);
    expect(new Set(rounds.map((m) => m.backend))).toEqual(new Set([platformOf().computeBackend]));
    expect(summary.computeBackend).toBe(platformOf().computeBackend);
    // Loss went down from the first rounds to the last.
    const loss = (r: number) => rounds.filter((m) => m.round === r).reduce((s, m) => s + m.loss, 0) / 3;
    expect(loss(Math.max(...rounds.map((m) => m.round)))).toBeLessThan(loss(0));
  });

  it('exchange "all", "sharded" and "sharded-step" give byte-identical parameters', async () => {
    const over = { maxRounds: 6, checkEvery: 100, validationSize: 0 } as const;
    const all = await run(3, { ...over, exchange: 'all' });
    const sharded = await run(3, { ...over, exchange: 'sharded' });
    // Each owner steps its slice alone (Adam's moments sharded): the same bytes.
    const step = await run(3, { ...over, exchange: 'sharded-step' });
    expect(all.summary.identical && sharded.summary.identical && step.summary.identical).toBe(true);
    expect(sharded.summary.checksums[0]).toBe(all.summary.checksums[0]);
    expect(step.summary.checksums[0]).toBe(all.summary.checksums[0]);
    expect(step.rounds.some((m) => m.repaired)).toBe(false);
    // Sharded: each peer receives 2(N-1)/N of the vector per round instead of N-1 vectors.
    const vector = all.summary.parameters * 4;
    const perRound = (rs: RoundMetrics[]) => rs.reduce((s, m) => s + m.bytesReceived, 0) / rs.length;
    expect(perRound(all.rounds)).toBe(2 * vector);
    expect(perRound(sharded.rounds)).toBeLessThanOrEqual((4 / 3) * vector + 16);
  });

  it('SGD with momentum and a median aggregation also keep replicas identical', async () => {
    const { summary } = await run(3, { maxRounds: 5, checkEvery: 100, validationSize: 0, optimizer: { kind: 'sgd', lr: 0.05, momentum: 0.9 }, aggregation: { rule: 'median' } });
    expect(summary.identical).toBe(true);
    expect(summary.rounds).toBe(5);
  });

  it('Multi-Krum with too few peers falls back to the median, or with no fallback fails with a clear error', async () => {
    const logs: string[] = [];
    const over = { maxRounds: 2, checkEvery: 100, validationSize: 0, aggregation: { rule: 'krum', byzantine: 1, select: 1 } } as const;
    const fallback = await runLocalCluster({ peers: 3, config: parseTrainingConfig({ ...base, ...over }), platform: platformOf(), onLog: (m) => logs.push(m) });
    expect(fallback.identical).toBe(true);
    expect(fallback.outcomes.map((o) => o.state)).toEqual(['done', 'done', 'done']);
    expect(logs.filter((l) => /needs at least 5 averages \(n > 2f\+2\), and 3 arrived: aggregating with the median instead/.test(l))).toHaveLength(6);
    const strict = await runLocalCluster({ peers: 3, config: parseTrainingConfig({ ...base, ...over, fallbackAggregation: 'none' }), platform: platformOf() });
    for (const o of strict.outcomes) {
      expect(o.state).toBe('failed');
      expect(o.error).toBe('round 0: Multi-Krum with f=1 needs at least 5 averages (n > 2f+2), and 3 arrived; set fallbackAggregation to median or mean to go on with fewer');
    }
  });

  it('a run stopped with its state on disk resumes where it stopped (--data-dir, --resume)', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'peerless-resume-'));
    try {
      const config = parseTrainingConfig({ ...base, maxRounds: 1000, checkEvery: 1000, validationSize: 0 });
      const stopAfter = (n: number) => {
        const abort = new AbortController();
        const rounds: RoundMetrics[] = [];
        return { abort, rounds, onRound: (m: RoundMetrics) => { rounds.push(m); if (m.round >= n) abort.abort(); } };
      };
      const first = stopAfter(2);
      const a = await runLocalCluster({ peers: 2, config, platform: platformOf(), dataDir, signal: first.abort.signal, onRound: first.onRound });
      expect(a.identical).toBe(true);
      expect(a.stopReason).toMatch(/stop requested/);
      const last = Math.max(...first.rounds.map((m) => m.round));

      const second = stopAfter(last + 2);
      // The flags' configuration is ignored on resume: the network's own is kept in Redis.
      const b = await runLocalCluster({ peers: 2, config: parseTrainingConfig({ ...base, model: { name: 'vgg11' } }), platform: platformOf(), dataDir, resume: true, signal: second.abort.signal, onRound: second.onRound });
      expect(b.identical).toBe(true);
      expect(Math.min(...second.rounds.map((m) => m.round))).toBe(last + 1);
      expect(b.parameters).toBe(a.parameters);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('a run resumed after its last round runs no round more, and ends as it did', async () => {
    // A SIGKILL can land after the last update, while the run ends: the resumed run once
    // trained one round past the limit and ended with another checksum.
    const dataDir = mkdtempSync(join(tmpdir(), 'peerless-resume-'));
    try {
      const config = parseTrainingConfig({ ...base, maxRounds: 3, checkEvery: 1000, validationSize: 0 });
      const a = await runLocalCluster({ peers: 2, config, platform: platformOf(), dataDir });
      expect(a.stopReason).toMatch(/round limit 3/);
      const rounds: RoundMetrics[] = [];
      const b = await runLocalCluster({ peers: 2, config, platform: platformOf(), dataDir, resume: true, onRound: (m) => rounds.push(m) });
      expect(rounds).toEqual([]);
      expect(b).toMatchObject({ rounds: a.rounds, stopReason: a.stopReason, identical: true, checksums: a.checksums });
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
