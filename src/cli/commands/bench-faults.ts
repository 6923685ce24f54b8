import { FAULTS, runFaultBench, type Fault, type FaultReport } from '../../../bench/faults.ts';
import { formatMs, table } from '../format.ts';
import { progressBar } from '../progress.ts';

export interface FaultsCliOptions {
  json?: boolean;
  fraction?: number;
  rounds?: number;
  timeout?: number;
  delay?: number;
  seed?: number;
  queued?: boolean;
  kinds?: string;
}

/** `peerless bench faults`: a clean run and a run with failing functions, side by side. */
export async function benchFaults(o: FaultsCliOptions): Promise<FaultReport> {
  const bar = progressBar(!o.json, 'faults');
  const r = await runFaultBench({
    ...(o.fraction !== undefined ? { fraction: o.fraction } : {}), ...(o.rounds ? { rounds: o.rounds } : {}),
    ...(o.timeout ? { timeoutMs: o.timeout } : {}), ...(o.delay ? { delayMs: o.delay } : {}), ...(o.seed !== undefined ? { seed: o.seed } : {}), queued: o.queued,
    ...(o.kinds ? { kinds: o.kinds.split(',').map((k) => k.trim()) as Fault[] } : {}),
    onProgress: (d, t, w) => bar.update(d, t, w),
  });
  bar.stop();
  if (o.json) {
    process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
    return r;
  }
  process.stdout.write(`${[
    `Function faults: ${r.peers} peers, ${r.batchesPerRound} batches per round, the same seed; a call times out after ${formatMs(r.timeoutMs)}, a delay fault holds it ${formatMs(r.delayMs)}`,
    r.elastic ? 'Elastic functions (an instance per call, as on Lambda): a call slow to answer, or failing fast, gets another copy.' : 'Queued functions (a pool of 2 instances): no call is copied.',
    ...(r.kinds.length < FAULTS.length ? [`Faults of these kinds only: ${r.kinds.join(', ')}.`] : []),
    '',
    table(['failing calls', 'rounds', 'median round', 'mean round', 'median calls', 'calls', ...FAULTS, 'copied', 'read from Redis', 'batches given up', 'checksum'],
      r.rows.map((x) => [`${Math.round(x.fraction * 100)}%`, String(x.rounds), formatMs(x.medianRoundMs), formatMs(x.meanRoundMs), formatMs(x.medianCallsMs), String(x.calls),
        ...FAULTS.map((f) => String(x.injected[f])), String(x.hedges), String(x.landed), String(x.failedBatches), x.checksum ?? 'replicas differ'])),
    '',
    `round with faults / clean: median ${r.ratio.toFixed(2)}x, mean ${r.meanRatio.toFixed(2)}x (target: under 1.5x); same final checksum: ${r.sameChecksum ? 'yes' : 'NO'}`,
    'Steady rounds only (round 0 builds the model in each function instance). The peers and the functions share this machine\'s cores.',
  ].join('\n')}\n`);
  return r;
}
