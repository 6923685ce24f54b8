import { EXCHANGES, type Exchange } from '../../config/exchanges.ts';
import { RESNET18_PARAMS, runRoundBench, type RoundReport } from '../../../bench/round.ts';
import { formatBytes, formatMs, table } from '../format.ts';
import { progressBar } from '../progress.ts';

export interface RoundCliOptions {
  quick?: boolean;
  json?: boolean;
  params?: number;
  peerCounts?: number[];
  /** Exchanges to run side by side (default: every one). */
  exchange?: Exchange[];
  transfer?: 'direct' | 'relay' | 'both';
  writers?: number;
  rounds?: number;
  allreduce?: boolean;
  serverNice?: number;
}

const x = (v: number | null) => (v === null ? '-' : `${v.toFixed(2)}x`);

/** `peerless bench round`: the data path of a round alone, beside a gloo all-reduce. */
export async function benchRound(o: RoundCliOptions): Promise<RoundReport> {
  const length = o.params ?? RESNET18_PARAMS;
  const bar = progressBar(!o.json, 'round');
  const report = await runRoundBench({
    peerCounts: o.peerCounts ?? (o.quick ? [4] : [4, 8, 12]),
    exchanges: o.exchange ?? [...EXCHANGES],
    transfers: o.transfer === 'direct' || o.transfer === 'relay' ? [o.transfer] : ['direct', 'relay'],
    length,
    writers: o.writers ?? 4,
    rounds: o.rounds ?? (o.quick ? 3 : 10),
    allreduce: o.allreduce !== false,
    serverNice: o.serverNice ?? 0,
    onProgress: (d, t, w) => bar.update(d, t, w),
  });
  bar.stop();
  if (o.json) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    return report;
  }
  const out = [
    `A round's data path without compute: ${length.toLocaleString()} float32 (${formatBytes(length * 4)}), ${report.writers} gradients per peer per round, median of ${report.rounds} rounds after 2 warm-up`,
    '',
    table(
      ['peers', 'exchange', 'transfer', 'ingest/gradient', 'wire/vector', 'ingest/wire', 'exchange', 'aggregate', 'update', 'round', 'gloo all-reduce', 'round/all-reduce', 'CPU/round (Redis + peers)', 'gloo CPU', 'Redis waiting for a core', 'verify', 'repairs', 'max stall', 'vectors in', 'Redis growth', 'peak RSS'],
      report.rows.map((r) => [
        r.peers, r.exchange, r.transfer, formatMs(r.ingestMsPerGradient), formatMs(r.wireMsPerVector), x(r.ingestVsWire), formatMs(r.exchangeMs),
        formatMs(r.aggregateMs), formatMs(r.updateMs), formatMs(r.roundMs), r.allreduceMs === null ? 'no torch' : formatMs(r.allreduceMs),
        x(r.vsAllreduce), `${formatMs(r.redisCpuMsPerRound)} + ${formatMs(r.nodeCpuMsPerRound)}`, r.allreduceCpuMs === null ? '-' : formatMs(r.allreduceCpuMs), r.redisWaitMsPerRound === null ? '-' : formatMs(r.redisWaitMsPerRound), formatMs(r.verifyMs), r.repairs, formatMs(r.maxStallMs), r.vectorsReceivedPerPeer.toFixed(2), `${r.redisGrowthMb.toFixed(1)} MB`, `${r.peakRssMb.toFixed(0)} MB`,
      ]),
    ),
    '',
    ...report.rows.map((r) => `stalls (${r.peers} peers, ${r.exchange}, ${r.transfer}): ${Object.entries(r.stallsByCommand).slice(0, 5).map(([c, ms]) => `${c} ${formatMs(ms)}`).join(', ') || 'none over 1 ms'}`),
    ...report.rows.map((r) => `commands per peer per round (${r.peers} peers, ${r.exchange}, ${r.transfer}): ${r.commandsPerRound.calls.toFixed(0)}, ${formatMs(r.commandsPerRound.redisMs)} inside Redis; most called: ${Object.entries(r.commandsPerRound.byCommand).slice(0, 6).map(([c, k]) => `${c} ${k.calls.toFixed(1)}`).join(', ')}`),
    `alone (one peer's round of commands on an idle server, one at a time): the longest command is ${Object.entries(report.alone.byCommand).slice(0, 1).map(([c, ms]) => `${c} ${formatMs(ms)}`).join('') || 'none'}; then ${Object.entries(report.alone.byCommand).slice(1, 5).map(([c, ms]) => `${c} ${formatMs(ms)}`).join(', ')}. The rows' stalls also count a server kept off its core.`,
    'round = from the last peer\'s average being ready to the last peer\'s parameters updated (exchange + aggregation + optimizer step); each peer runs in its own thread.',
    'transfer: direct = the module sends each range to the other Redis itself (PL.SEND); relay = the peer reads and writes it.',
    'gloo all-reduce: torch.distributed among as many processes on loopback (python3-torch); it does no optimizer step.',
    'CPU/round: every redis-server and every peer thread with its writers, per measured round, whole rounds (ingest and agreement too); gloo CPU: every rank per all-reduce. CPU drifts less than wall time with the machine\'s load.',
    `Redis waiting for a core: per round, how long the peers' redis-servers were ready to run commands but had no core (Linux schedstat, summed over servers); a wait inside a command is part of its stall${report.rows[0]?.serverNice ? `. The servers ran at nice ${report.rows[0].serverNice}` : ''}.`,
    'ingest/gradient: first pushed byte to the average being ready, per gradient (every peer ingesting at once).',
    `wire/vector: the limit at the same load: as many writers (${report.writers} per peer, every peer at once) each writing a vector into an existing tensor in its peer's Redis, nothing summed, per vector; one vector alone over one loopback connection: ${report.rows[0] ? formatMs(report.rows[0].wireMsSingleStream) : '-'}.`,
    `Note: ${report.note}.`,
  ];
  process.stdout.write(`${out.join('\n')}\n`);
  return report;
}
