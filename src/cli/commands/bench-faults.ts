import { FAULTS, runFaultBench, type FaultReport } from '../../../bench/faults.ts';
import { formatMs, table } from '../format.ts';
import { progressBar } from '../progress.ts';

export interface FaultsCliOptions {
  json?: boolean;
  fraction?: number;
  rounds?: number;
  timeout?: number;
  delay?: number;
  seed?: number;
}

/** `peerless bench faults`: a clean run and a run with failing functions, side by side. */
export async function benchFaults(o: FaultsCliOptions): Promise<FaultReport> {
  const bar = progressBar(!o.json, 'faults');
  const r = await runFaultBench({
    ...(o.fraction !== undefined ? { fraction: o.fraction } : {}), ...(o.rounds ? { rounds: o.rounds } : {}),
    ...(o.timeout ? { timeoutMs: o.timeout } : {}), ...(o.delay ? { delayMs: o.delay } : {}), ...(o.seed !== undefined ? { seed: o.seed } : {}),
    onProgress: (d, t, w) => bar.update(d, t, w),
  });
  bar.stop();
  if (o.json) {
    process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
    return r;
  }
  process.stdout.write(`${[
    `Function faults: ${r.peers} peers, ${r.batchesPerRound} batches per round, the same seed; a call times out after ${formatMs(r.timeoutMs)}, a delay fault holds it ${formatMs(r.delayMs)}`,
    '',
    table(['failing calls', 'rounds', 'median round', 'mean round', 'calls', ...FAULTS, 'batches given up', 'checksum'],
      r.rows.map((x) => [`${Math.round(x.fraction * 100)}%`, String(x.rounds), formatMs(x.medianRoundMs), formatMs(x.meanRoundMs), String(x.calls),
        ...FAULTS.map((f) => String(x.injected[f])), String(x.failedBatches), x.checksum ?? 'replicas differ'])),
    '',
    `median round with faults / clean: ${r.ratio.toFixed(2)}x (target: under 1.5x); same final checksum: ${r.sameChecksum ? 'yes' : 'NO'}`,
    'Steady rounds only (round 0 builds the model in each function instance). The peers and the functions share this machine\'s cores.',
  ].join('\n')}\n`);
  return r;
}
