import { runChunkBench, type ChunkReport } from '../../../bench/chunks.ts';
import { RESNET18_PARAMS } from '../../../bench/round.ts';
import { DEFAULT_CHUNK_ELEMENTS } from '../../tensor/transfer.ts';
import { formatBytes, formatMs, table } from '../format.ts';
import { progressBar } from '../progress.ts';

export interface ChunksCliOptions {
  json?: boolean;
  params?: number;
  sizes?: number[];
  writers?: number;
  repeats?: number;
}

/** `peerless bench chunks`: the sweep behind the transfer path's chunk size. */
export async function benchChunks(o: ChunksCliOptions): Promise<ChunkReport> {
  const length = o.params ?? RESNET18_PARAMS;
  const kib = o.sizes ?? [64, 256, 1024, 4096, 16384];
  const bar = progressBar(!o.json, 'chunks');
  const report = await runChunkBench({
    length, chunks: kib.map((k) => k * 256), writers: o.writers ?? 4, repeats: o.repeats ?? 5,
    onProgress: (d, t, w) => bar.update(d, t, w),
  }, DEFAULT_CHUNK_ELEMENTS);
  bar.stop();
  if (o.json) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    return report;
  }
  const out = [
    `Chunk sizes of the transfer path: ${length.toLocaleString()} float32 (${formatBytes(length * 4)}), ${report.writers} writers, median of ${report.repeats}`,
    '',
    table(
      ['chunk', 'push per gradient', 'stream per vector', 'max stall'],
      report.rows.map((r) => [`${formatBytes(r.chunkBytes)}${r.chunkElements === report.defaultChunkElements ? ' (default)' : ''}`, formatMs(r.pushMsPerGradient), formatMs(r.streamMsPerVector), formatMs(r.maxStallMs)]),
    ),
    '',
    'push: writers push a gradient each into one sum (PL.PUSH), as functions do; stream: one vector between two Redis servers.',
    'max stall: the longest single command in the receiving Redis (its slow log). Set the size with --chunk-kib (train, peer).',
  ];
  process.stdout.write(`${out.join('\n')}\n`);
  return report;
}
