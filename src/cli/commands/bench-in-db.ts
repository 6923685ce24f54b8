import { PAPER_GRADIENTS, RESNET18_PARAMS, runInDbBench, type InDbReport } from '../../../bench/in-db.ts';
import { formatBytes, formatMs, ratio, table } from '../format.ts';
import { progressBar } from '../progress.ts';

export interface InDbCliOptions {
  quick?: boolean;
  json?: boolean;
  params?: number;
  gradients?: number[];
  repeats?: number;
}

/** `peerless bench in-db`: the paper's Table 2, in-database vs outside-database. */
export async function benchInDb(o: InDbCliOptions): Promise<InDbReport> {
  const gradients = o.gradients ?? (o.quick ? [15, 4] : PAPER_GRADIENTS);
  const length = o.params ?? RESNET18_PARAMS;
  const bar = progressBar(!o.json, 'in-db');
  const report = await runInDbBench({ gradients, length, updateRepeats: o.repeats ?? (o.quick ? 3 : 5), onProgress: (d, t, w) => bar.update(d, t, w) });
  bar.stop();
  if (o.json) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    return report;
  }
  const out = [
    `Gradient averaging and model update, with vs outside the database (one redis-server, ${length.toLocaleString()} float32 = ${formatBytes(length * 4)} per tensor)`,
    '',
    table(
      ['gradients', 'avg in DB', 'avg outside', 'speedup', 'after ingest: in DB', 'outside', 'speedup', 'update in DB', 'update outside', 'speedup', 'worst stall', 'identical'],
      report.rows.map((r) => [
        r.gradients, formatMs(r.averageInDbMs), formatMs(r.averageOutsideDbMs), ratio(r.averageOutsideDbMs, r.averageInDbMs),
        formatMs(r.averageInDbAfterIngestMs), formatMs(r.averageOutsideDbAfterIngestMs), ratio(r.averageOutsideDbAfterIngestMs, r.averageInDbAfterIngestMs),
        formatMs(r.updateInDbMs), formatMs(r.updateOutsideDbMs), ratio(r.updateOutsideDbMs, r.updateInDbMs),
        formatMs(r.worstStallInDbMs), r.identical ? 'yes' : 'NO',
      ]),
    ),
    '',
    `Server-side time per call: ${Object.entries(report.serverUsecPerCall).map(([k, v]) => `${k} ${(v / 1000).toFixed(2)} ms`).join(', ')}`,
    'Original work (ResNet-18, Table 2): averaging 1.3-1.8x faster in the database, update 5.7x (4.8 s vs 27.5 s).',
    'avg: pushing the gradients into Redis and averaging them (in DB: PL.PUSH chunks summed as they arrive; outside: each written, then fetched with the running sum, added in Node, stored back).',
    'after ingest: only the work once a gradient is in Redis, the original work\'s definition (in DB: the server\'s time in PL.PUSH and writing the average; outside: fetch, add, store back).',
    'worst stall: the longest PING another client saw during the in-DB work. identical: both ways gave the same bytes.',
  ];
  process.stdout.write(`${out.join('\n')}\n`);
  return report;
}
