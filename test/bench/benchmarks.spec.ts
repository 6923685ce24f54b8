import { describe, expect, it } from 'vitest';
import { runComputeBench } from '../../bench/compute.ts';
import { runFaultBench } from '../../bench/faults.ts';
import { runInDbBench } from '../../bench/in-db.ts';
import { runKillBench } from '../../bench/kills.ts';
import { runRoundBench } from '../../bench/round.ts';
import { runScalingBench } from '../../bench/scaling.ts';
import { runServerlessBench } from '../../bench/serverless.ts';
import { nativeAddon } from '../../src/model/native-backend.ts';
import { LocalPlatform } from '../../src/platform/local/local-platform.ts';

/**
 * The benchmark runners on tiny inputs: they run end to end and report what they promise.
 * No timing is asserted here (benchmarks measure; tests check behaviour).
 */
const local = async () => {
  const p = new LocalPlatform({ workers: 2 });
  await p.warm();
  return p;
};

describe('benchmark runners', () => {
  it('compute: a row per backend, each measured in its own process, or the reason it could not run', async () => {
    const r = await runComputeBench({ models: ['cnn'], batchSizes: [8], runs: 1 });
    expect(r.rows.map((x) => x.backend)).toEqual(['wasm', 'native', 'pytorch']);
    const [wasm, native] = r.rows;
    expect(wasm).toMatchObject({ model: 'cnn', batch: 8 });
    expect(wasm!.msPerGradient).toBeGreaterThan(0);
    expect(wasm!.peakRssMb).toBeGreaterThan(0);
    if (nativeAddon() instanceof Error) expect(native!.error).toMatch(/native backend is not available/);
    else expect(native!.msPerGradient).toBeGreaterThan(0);
    for (const row of r.rows) expect(row.msPerGradient !== null || row.error !== undefined).toBe(true);
    // --backends narrows the rows to the ones asked for.
    const one = await runComputeBench({ models: ['cnn'], batchSizes: [8], runs: 1, backends: ['wasm'] });
    expect(one.rows.map((x) => x.backend)).toEqual(['wasm']);
    expect(one.rows[0]!.vsPytorch).toBeNull();
  });

  it('in-db: every row has both ways, and both ways gave the same bytes', async () => {
    const r = await runInDbBench({ gradients: [3, 2], length: 50_000, updateRepeats: 1 });
    expect(r.rows.map((x) => x.gradients)).toEqual([3, 2]);
    for (const row of r.rows) {
      expect(row.identical).toBe(true);
      for (const k of ['averageInDbMs', 'averageOutsideDbMs', 'averageInDbAfterIngestMs', 'averageOutsideDbAfterIngestMs', 'updateInDbMs', 'updateOutsideDbMs'] as const) expect(row[k]).toBeGreaterThan(0);
      // The time after ingest is part of the whole, each way.
      expect(row.averageInDbAfterIngestMs).toBeLessThanOrEqual(row.averageInDbMs);
      expect(row.averageOutsideDbAfterIngestMs).toBeLessThanOrEqual(row.averageOutsideDbMs);
    }
    // The functions' path: gradients pushed in chunks.
    expect(Object.keys(r.serverUsecPerCall)).toEqual(expect.arrayContaining(['PL.PUSH', 'PL.SGD']));
  });

  it('serverless: with and without serverless compute the same average on real MNIST', async () => {
    // vgg11 (the paper's Table 1 model): 9,487,114 parameters, ten pieces of the module's
    // average (FINISH_PIECE, 2^20), written by its timer after the last push: the bench must
    // read them once announced (read at once, their tail was still zeros: max |diff| 1.7e-2).
    const r = await runServerlessBench({ model: 'vgg11', width: 1, batchSizes: [64], samples: 128, instanceUsdPerHour: 0.126, platform: local, concurrencySweep: true });
    expect(r.parameters).toBeGreaterThan(1 << 20);
    expect(r.rows).toHaveLength(1);
    expect(r.rows[0]).toMatchObject({ batchSize: 64, batches: 2 });
    // Exact sums: one process or parallel functions, the same average to the bit.
    expect(r.rows[0].maxAbsDiff).toBe(0);
    expect(r.rows[0].wsCostUsd).toBeGreaterThan(0);
    expect(r.concurrency.map((c) => c.concurrency)).toEqual([1, 2]);
  });

  it('scaling: rows per configuration, and sharded receives less than all', async () => {
    const r = await runScalingBench({ model: 'cnn', width: 0.25, batchSizes: [128], peerCounts: [3], samples: 768, rounds: 1, platform: local });
    expect(r.rows).toHaveLength(1);
    expect(r.rows[0]).toMatchObject({ peers: 3, batchSize: 128, batchesPerPeer: 2 });
    const all = r.bytes.find((b) => b.exchange === 'all')!;
    const sharded = r.bytes.find((b) => b.exchange === 'sharded')!;
    expect(all.vectors).toBeCloseTo(2, 5);
    expect(sharded.vectors).toBeCloseTo(4 / 3, 2);
  });

  it('round: real peers run rounds on pushed gradients; a row per exchange and transfer, with the wire figure', async () => {
    // At nice +1: the servers start under `nice`, and the value is read back (a raise needs no privilege).
    const r = await runRoundBench({ peerCounts: [3], exchanges: ['all', 'sharded', 'sharded-step'], transfers: ['direct', 'relay'], length: 60_001, writers: 2, rounds: 2, allreduce: false, serverNice: 1 });
    expect(r.rows.map((x) => [x.peers, x.exchange, x.transfer])).toEqual([[3, 'all', 'direct'], [3, 'all', 'relay'], [3, 'sharded', 'direct'], [3, 'sharded', 'relay'], [3, 'sharded-step', 'direct'], [3, 'sharded-step', 'relay']]);
    for (const row of r.rows) {
      for (const k of ['ingestMsPerGradient', 'roundMs', 'wireMsPerVector', 'redisCpuMsPerRound', 'nodeCpuMsPerRound'] as const) expect(row[k], k).toBeGreaterThan(0);
      expect(row.allreduceMs).toBeNull();
      expect(row.allreduceCpuMs).toBeNull();
      expect(row.serverNice).toBe(1);
      // Linux says how long the servers waited for a core.
      if (process.platform === 'linux') expect(row.redisWaitMsPerRound).toBeGreaterThanOrEqual(0);
    }
    for (const row of r.rows) expect(row.vectorsReceivedPerPeer).toBeCloseTo(row.exchange === 'all' ? 2 : 4 / 3, 2);
    // Each peer's Redis, counted by the server itself: the writers' pushes, the update, the total as the sum of its kinds.
    for (const row of r.rows) {
      const c = row.commandsPerRound;
      expect(c.byCommand['PL.PUSH']?.calls, 'PL.PUSH').toBeGreaterThan(0);
      expect(c.byCommand['PL.SGD']?.calls, 'PL.SGD').toBeGreaterThan(0);
      expect(c.byCommand.INFO, 'the bench\'s own reads are not the round\'s').toBeUndefined();
      expect(c.calls).toBeCloseTo(Object.values(c.byCommand).reduce((s, k) => s + k.calls, 0), 6);
    }
    // One peer's commands alone: every kind of the round's data path was timed.
    for (const c of ['PL.PUSH', 'PL.SEND', 'PL.AGGREGATE', 'PL.SGD', 'PL.CHECKSUM']) expect(r.alone.byCommand[c], c).toBeGreaterThanOrEqual(0);
  });
  it('faults: a clean run and a faulty one, side by side, ending with the same checksum', async () => {
    // The queued pool: its 2 instances build the model once each, where the elastic default's 8
    // would build it 8 times on these 2 cores, past this short timeout (the clean run would
    // then retry calls too). Hedging has its own test (test/faults/function-faults.spec.ts). A
    // call timeout a loaded machine's calls meet: a cut call still runs on the server, so at
    // 500 ms every slow call's retries queued more calls behind it.
    const r = await runFaultBench({ fraction: 0.5, rounds: 3, timeoutMs: 3_000, delayMs: 3_500, seed: 2, queued: true });
    expect(r.rows.map((x) => x.fraction)).toEqual([0, 0.5]);
    const [clean, faulty] = r.rows;
    expect(Object.values(clean!.injected).every((n) => n === 0)).toBe(true);
    expect(Object.values(faulty!.injected).reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
    // One counted call per batch (2 peers, 3 rounds, 3 batches), and one more for every fault but
    // a reset after the function ran: not a comparison with the clean run's calls, which on a
    // busy machine retries calls cut by the timeout too.
    const { injected } = faulty!;
    expect(faulty!.calls).toBeGreaterThanOrEqual(2 * 3 * 3 + injected['500'] + injected.reset + injected.delay);
    for (const row of r.rows) {
      expect(row.rounds).toBe(3);
      expect(row.failedBatches).toBe(0);
      expect(row.medianRoundMs).toBeGreaterThan(0);
      expect(row.roundMs).toHaveLength(2 * 2); // both peers' steady rounds (round 0 builds the model)
    }
    expect(r.sameChecksum).toBe(true);
    expect(r.ratio).toBeCloseTo(faulty!.medianRoundMs / clean!.medianRoundMs, 9);
    expect(r.meanRatio).toBeCloseTo(faulty!.meanRoundMs / clean!.meanRoundMs, 9);
    expect([r.elastic, clean!.hedges, faulty!.hedges]).toEqual([false, 0, 0]);
  });

  it('kills: the coordinator killed before updating; the survivors go on identical, and the time they lost is reported', async () => {
    // A 15 s deadline: at 2 s, beside two other suites, every joiner's first gradient missed it
    // round after round, so the three never stayed members together (the bench's bound said so);
    // at 5 s its function deadline (half) still left a loaded machine's queued calls little room.
    const r = await runKillBench({ victims: ['coordinator'], killed: ['process'], phases: ['updating'], deadlineMs: 15_000 });
    expect(r.rows).toHaveLength(1);
    const [row] = r.rows;
    expect([row!.victim, row!.peer, row!.killed, row!.phase, row!.identical]).toEqual(['coordinator', 'p0', 'process', 'updating', true]);
    expect(row!.cleanRoundMs).toBeGreaterThan(0);
    expect(row!.lostDeadlines).toBeCloseTo(row!.lostMs / 15_000, 9);
    expect(r.worst).toBe(row!.lostDeadlines);
    // Bounded past the bench's own bounds (settling, the pause, the rounds after the kill: 120 s
    // each), which name the stage and print every peer's log; a suite's default would cut a
    // slow run on a loaded machine with neither (it took 20-25 s alone, over 120 s in a CI run
    // beside a repeat run).
  }, 420_000);

  it('kills: a phase, victim or kind it does not know is named in the error, before anything starts', async () => {
    await expect(runKillBench({ phases: ['compting' as 'computing'] })).rejects.toThrow('bench kills: unknown phase "compting" (known: computing, averaging, exchanging, aggregating, updating, verifying, checking)');
    await expect(runKillBench({ victims: [] })).rejects.toThrow('bench kills: name at least one victim (known: coordinator, member)');
    await expect(runKillBench({ killed: ['disk' as 'redis'] })).rejects.toThrow('bench kills: unknown killed "disk"');
    await expect(runKillBench({ deadlineMs: 10 })).rejects.toThrow('bench kills: --deadline must be a whole number of ms, at least 1000, got 10');
  });
});
