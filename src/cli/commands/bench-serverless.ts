import { R5_LARGE_USD_PER_HOUR, runServerlessBench, type ServerlessReport } from '../../../bench/serverless.ts';
import { createPlatform, type PlatformChoice } from '../../platform/index.ts';
import { formatMs, table } from '../format.ts';
import { progressBar } from '../progress.ts';

/** `peerless bench serverless`: the paper's Table 1, with vs without serverless offload. */
export async function benchServerless(o: Record<string, unknown>, platform: PlatformChoice): Promise<ServerlessReport> {
  const quick = Boolean(o.quick);
  const bar = progressBar(!o.json, 'serverless');
  const report = await runServerlessBench({
    model: String(o.model), width: Number(o.width),
    batchSizes: (o.batchSizes as number[] | undefined) ?? (quick ? [64, 512] : [64, 128, 512, 1024]),
    samples: (o.samples as number | undefined) ?? (quick ? 3000 : 15_000),
    instanceUsdPerHour: (o.instanceUsdPerHour as number | undefined) ?? R5_LARGE_USD_PER_HOUR,
    platform: () => createPlatform(platform),
    concurrencySweep: platform.platform === 'local',
    onProgress: (d, t, w) => bar.update(d, t, w),
  });
  bar.stop();
  if (o.json) { process.stdout.write(`${JSON.stringify(report, null, 2)}\n`); return report; }
  const usd = (x: number) => `$${x.toFixed(5)}`;
  const lines = [
    `Gradients of one peer's shard (${report.samples.toLocaleString()} MNIST images, ${report.model}, ${report.parameters.toLocaleString()} parameters) on ${report.cores} cores, platform ${report.platform}`,
    '',
    table(['batch', 'batches', 'without serverless', 'with serverless', 'speedup', 'cost without', 'cost with', 'max |diff|'],
      report.rows.map((r) => [r.batchSize, r.batches, formatMs(r.wosMs), formatMs(r.wsMs), `${r.speedup.toFixed(2)}x`, usd(r.wosCostUsd), usd(r.wsCostUsd), r.maxAbsDiff.toExponential(1)])),
  ];
  if (report.concurrency.length > 0) {
    lines.push('', `Speedup with the concurrency (batch ${Math.min(...report.rows.map((r) => r.batchSize))})`, '',
      table(['concurrency', 'with serverless', 'speedup'], report.concurrency.map((c) => [c.concurrency, formatMs(c.wsMs), `${c.speedup.toFixed(2)}x`])));
  }
  if (report.localOverheadMs !== null) lines.push('', `Local platform overhead per warm invocation: ${report.localOverheadMs.toFixed(3)} ms`);
  lines.push(
    'Without serverless: every batch one after another in this process; cost = time x the instance\'s hourly price.',
    'With serverless: every batch an invocation, all at once; cost = AWS Lambda\'s GB-second and request prices.',
    'On this machine the functions share its cores, so the speedup is bounded by the core count; on Lambda each',
    'invocation has its own. max |diff| between the two averages: 0 with exact, order-free sums.',
    'Original work (VGG11, 235 batches of 64): 394.8 s without, 10.5 s with serverless (37.6x), at 5.3x the cost.',
  );
  process.stdout.write(`${lines.join('\n')}\n`);
  return report;
}
