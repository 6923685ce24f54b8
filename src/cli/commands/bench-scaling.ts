import { runScalingBench, scalingDefaults, type ScalingReport } from '../../../bench/scaling.ts';
import { createPlatform, type PlatformChoice } from '../../platform/index.ts';
import { formatBytes, formatMs, table } from '../format.ts';
import { progressBar } from '../progress.ts';

/** `peerless bench scaling`: the paper's Figure 2 and the exchange's bytes. */
export async function benchScaling(o: Record<string, unknown>, platform: PlatformChoice): Promise<ScalingReport> {
  const quick = Boolean(o.quick);
  const bar = progressBar(!o.json, 'scaling');
  const grid = scalingDefaults(String(o.model), quick);
  const report = await runScalingBench({
    model: String(o.model), width: Number(o.width),
    batchSizes: (o.batchSizes as number[] | undefined) ?? grid.batchSizes,
    peerCounts: (o.peerCounts as number[] | undefined) ?? grid.peerCounts,
    samples: (o.samples as number | undefined) ?? grid.samples,
    rounds: (o.rounds as number | undefined) ?? grid.rounds,
    platform: () => createPlatform(platform),
    onProgress: (d, t, w) => bar.update(d, t, w),
  });
  bar.stop();
  if (o.json) { process.stdout.write(`${JSON.stringify(report, null, 2)}\n`); return report; }
  process.stdout.write([
    `Time per round (mean over peers), ${report.model}, ${report.parameters.toLocaleString()} parameters, each peer's whole shard in one round:`,
    `${report.samples.toLocaleString()} MNIST images shared by the peers, ${report.rounds} measured round(s) per configuration (--samples, --rounds, --batch-sizes and --peer-counts change them)`,
    '',
    table(['peers', 'batch', 'batches/peer', 'gradient computation', 'aggregation', 'waiting for peers', 'round'],
      report.rows.map((r) => [r.peers, r.batchSize, r.batchesPerPeer, formatMs(r.computeMs), formatMs(r.aggregationMs), formatMs(r.waitMs), formatMs(r.roundMs)])),
    '',
    'Bytes each peer receives per round',
    '',
    table(['peers', 'exchange', 'bytes/peer/round', 'x parameter vector'],
      report.bytes.map((b) => [b.peers, b.exchange, formatBytes(b.bytesPerPeerPerRound), `${b.vectors.toFixed(2)}x`])),
    '',
    `Note: ${report.note}.`,
    'aggregation = averaging + exchange + aggregation + update + checksum comparison, without the time spent waiting',
    'for the other peers, shown apart: on one machine it is the other peers\' functions running on the shared cores.',
  ].join('\n') + '\n');
  return report;
}
