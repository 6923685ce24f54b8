/**
 * `peerless bench faults`: the reliability issue's target, side by side in one run. The same
 * seeded training (2 peers, 3 batches per round, real redis-servers, the real handlers on
 * worker threads behind `function serve`'s server) runs once with every function call
 * passing and once with a fraction of them failing behind a seeded proxy (gateway 500,
 * reset, delay past the caller's timeout, reset after the function ran). It reports each
 * run's median round, their ratio (target: under 1.5), the faults injected, and whether both
 * runs ended with the same checksum (sums are exact and order-free, so they must).
 *
 * By default the functions are elastic, as on Lambda: the pool has an instance for every call
 * of a round and two more for copies, and the peers give a call that is slow to answer a second copy
 * (src/platform/hedge.ts). `queued` runs them on a pool of two instances that queues calls
 * (what `function serve` on a small machine is), where no call is hedged.
 */
import { runLocalCluster } from '../src/cluster/local-cluster.ts';
import { parseTrainingConfig } from '../src/config/training.ts';
import { serveFunctions } from '../src/platform/http/server.ts';
import { LocalPlatform } from '../src/platform/local/local-platform.ts';
import type { RoundMetrics } from '../src/peer/types.ts';
import { behindFaultyProxy, FAULTS, type Fault } from './function-proxy.ts';
import { median } from './stats.ts';

export interface FaultBenchOptions {
  /** Share of the calls that fail in the faulty run (default 0.2). */
  fraction?: number;
  rounds?: number;
  /** Held this long by a `delay` fault, ms (past `timeoutMs`). */
  delayMs?: number;
  /** The platform's timeout of one call, ms: a delayed call is given up then, and retried. */
  timeoutMs?: number;
  seed?: number;
  /** Functions on a 2-instance pool that queues calls, without hedging (default: elastic). */
  queued?: boolean;
  /** Only these kinds of fault (default: all four, taking turns). */
  kinds?: readonly Fault[];
  onProgress?: (done: number, total: number, what: string) => void;
}

export interface FaultRow {
  fraction: number;
  rounds: number;
  medianRoundMs: number;
  meanRoundMs: number;
  /** The median steady round's gradient calls, from the first call's start to the last answer (they may start in the round before). */
  medianCallsMs: number;
  /** Every steady round's time, in order (both peers'), for a script to look at the tail. */
  roundMs: number[];
  /** Calls that reached the proxy (retries included), and the faults it injected by kind. */
  calls: number;
  injected: Record<Fault, number>;
  /** Batches given up at the function deadline (the round averaged the others). */
  failedBatches: number;
  /** Calls that got more than one copy, being slow to answer or failing fast. */
  hedges: number;
  /** Failed calls whose gradient had counted (read back from the database instead of called again). */
  landed: number;
  checksum: string | null;
}

export interface FaultReport {
  peers: number;
  kinds: Fault[];
  batchesPerRound: number;
  timeoutMs: number;
  delayMs: number;
  /** Whether calls had an instance each and slow ones a copy (see `queued`). */
  elastic: boolean;
  rows: FaultRow[];
  /** Median faulty round / median clean round. */
  ratio: number;
  /** Mean faulty round / mean clean round: what the rare long rounds cost. */
  meanRatio: number;
  sameChecksum: boolean;
}

export async function runFaultBench(o: FaultBenchOptions = {}): Promise<FaultReport> {
  const fraction = o.fraction ?? 0.2, rounds = o.rounds ?? 40, timeoutMs = o.timeoutMs ?? 1_000, delayMs = o.delayMs ?? 1_500, seed = o.seed ?? 1;
  if (!(fraction >= 0 && fraction < 1)) throw new Error(`bench faults: --fraction must be in [0, 1), got ${fraction}`);
  const kinds = o.kinds ?? FAULTS;
  for (const k of kinds) if (!FAULTS.includes(k)) throw new Error(`bench faults: unknown fault kind "${String(k)}" (known: ${FAULTS.join(', ')})`);
  if (kinds.length === 0) throw new Error('bench faults: --kinds names no fault kind');
  if (delayMs <= timeoutMs) throw new Error(`bench faults: --delay (${delayMs} ms) must exceed --timeout (${timeoutMs} ms): a delay fault is a call held past its timeout`);
  const config = parseTrainingConfig({
    model: { name: 'cnn', width: 0.25 }, dataset: 'synthetic', syntheticSize: 2048, batchSize: 32, batchesPerRound: 3,
    maxRounds: rounds, epochs: 1000, checkEvery: 100_000, validationSize: 0, optimizer: { kind: 'adam', lr: 0.003 }, seed: 11,
    deadlineMs: 30_000, functionDeadlineMs: 15_000,
  });
  const elastic = o.queued !== true;
  // Elastic: an instance for each of a round's calls (2 peers x 3 batches), and two for copies.
  const backend = new LocalPlatform({ workers: elastic ? 2 * config.batchesPerRound + 2 : 2 });
  await backend.warm();
  const functions = await serveFunctions({ handle: (name, event) => backend.invoke(name, event) });
  const rows: FaultRow[] = [];
  try {
    for (const [k, f] of [0, fraction].entries()) {
      const { proxy, platform, close } = await behindFaultyProxy(functions.url, { seed, fraction: f, delayMs, kinds, timeoutMs, elastic });
      const metrics: RoundMetrics[] = [];
      try {
        const summary = await runLocalCluster({
          peers: 2, config, platform,
          onRound: (m) => {
            metrics.push(m);
            if (m.peer.endsWith('00')) o.onProgress?.(k * rounds + m.round + 1, 2 * rounds, f === 0 ? 'clean run' : `${Math.round(f * 100)}% faults`);
          },
        });
        // The first round builds the model in each function instance: steady rounds only.
        const steady = metrics.filter((m) => m.round > 0), times = steady.map((m) => m.roundMs);
        rows.push({
          fraction: f, rounds: summary.rounds,
          medianRoundMs: median(times), meanRoundMs: times.reduce((a, b) => a + b, 0) / Math.max(1, times.length),
          medianCallsMs: median(steady.map((m) => m.functionWallMs)),
          roundMs: times.map((t) => Math.round(t)),
          calls: proxy.calls, injected: { ...proxy.injected },
          failedBatches: metrics.reduce((n, m) => n + m.failedBatches, 0),
          hedges: metrics.reduce((n, m) => n + (m.hedges ?? 0), 0),
          landed: metrics.reduce((n, m) => n + (m.landed ?? 0), 0),
          checksum: summary.identical ? summary.checksums[0] ?? null : null,
        });
      } finally {
        await close();
      }
    }
  } finally {
    await functions.close();
    await backend.close();
  }
  const [clean, faulty] = rows as [FaultRow, FaultRow];
  return {
    peers: 2, kinds: [...kinds], batchesPerRound: config.batchesPerRound, timeoutMs, delayMs, elastic, rows,
    ratio: faulty.medianRoundMs / clean.medianRoundMs,
    meanRatio: faulty.meanRoundMs / clean.meanRoundMs,
    sameChecksum: clean.checksum !== null && clean.checksum === faulty.checksum,
  };
}

export { FAULTS, type Fault };
