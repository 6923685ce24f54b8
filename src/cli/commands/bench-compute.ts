import { runComputeBench, type ComputeReport } from '../../../bench/compute.ts';
import { formatMs, table } from '../format.ts';
import { progressBar } from '../progress.ts';

export interface ComputeCliOptions {
  json?: boolean;
  quick?: boolean;
  models?: string;
  batch?: number;
  runs?: number;
}

const x = (v: number | null) => (v === null ? '-' : `${v.toFixed(2)}x`);
const ms = (v: number | null) => (v === null ? '-' : formatMs(v));

/** `peerless bench compute`: a gradient on wasm, on native, and in PyTorch, one core each. */
export async function benchCompute(o: ComputeCliOptions): Promise<ComputeReport> {
  const bar = progressBar(!o.json, 'compute');
  const report = await runComputeBench({
    models: (o.models ?? (o.quick ? 'cnn,vgg11' : 'cnn,vgg11,resnet18')).split(',').map((s) => s.trim()).filter(Boolean),
    batch: o.batch ?? 64,
    runs: o.runs ?? (o.quick ? 2 : 3),
    onProgress: (d, t, w) => bar.update(d, t, w),
  });
  bar.stop();
  if (o.json) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    return report;
  }
  const out = [
    `One gradient (forward, backward, loss) at batch ${report.batch}, one thread, median of ${report.runs} after a warm-up; native: ${report.native}`,
    '',
    table(
      ['model', 'wasm', 'native', 'PyTorch', 'native vs wasm', 'native / PyTorch'],
      report.rows.map((r) => [r.model, ms(r.wasmMs), ms(r.nativeMs), r.pytorchMs === null ? 'no torch' : ms(r.pytorchMs), x(r.nativeVsWasm), x(r.nativeVsPytorch)]),
    ),
    '',
    'native = the wasm backend with oneDNN\'s convolutions; PyTorch = Debian\'s python3-torch, the same architectures (bench/gradient.py).',
    'native / PyTorch below 1.00x means faster than PyTorch.',
  ];
  process.stdout.write(`${out.join('\n')}\n`);
  return report;
}
