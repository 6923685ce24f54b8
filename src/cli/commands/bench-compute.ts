import { COMPUTE_BACKENDS, runComputeBench, type ComputeBackend, type ComputeReport } from '../../../bench/compute.ts';
import { formatMs, table } from '../format.ts';
import { progressBar } from '../progress.ts';

export interface ComputeCliOptions {
  json?: boolean;
  quick?: boolean;
  models?: string;
  batchSizes?: string;
  runs?: number;
  backends?: string;
}

const list = (s: string) => s.split(',').map((v) => v.trim()).filter(Boolean);

/** `peerless bench compute`: a gradient on wasm, on native, and in PyTorch, one core each. */
export async function benchCompute(o: ComputeCliOptions): Promise<ComputeReport> {
  const bar = progressBar(!o.json, 'compute');
  const batchSizes = list(o.batchSizes ?? (o.quick ? '64' : '64,128')).map((v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`--batch-sizes: "${v}" is not a positive integer`);
    return n;
  });
  const backends = list(o.backends ?? COMPUTE_BACKENDS.join(',')).map((b) => {
    if (!(COMPUTE_BACKENDS as readonly string[]).includes(b)) throw new Error(`--backends: "${b}" is not one of ${COMPUTE_BACKENDS.join(', ')}`);
    return b as ComputeBackend;
  });
  if (backends.length === 0) throw new Error(`--backends: name at least one of ${COMPUTE_BACKENDS.join(', ')}`);
  const report = await runComputeBench({
    backends,
    models: list(o.models ?? 'cnn,vgg11,resnet18'),
    batchSizes,
    runs: o.runs ?? (o.quick ? 2 : 3),
    onProgress: (d, t, w) => bar.update(d, t, w),
  });
  bar.stop();
  if (o.json) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    return report;
  }
  const out = [
    `One gradient (forward, backward, loss), one thread, median of ${report.runs} after a warm-up, each row in its own process; native: ${report.native}`,
    '',
    table(
      ['model', 'batch', 'backend', 'ms per gradient', 'peak RSS', 'vs PyTorch', 'note'],
      report.rows.map((r) => [r.model, r.batch, r.checkpointed ? `${r.backend} (checkpointed)` : r.backend,
        r.msPerGradient === null ? '-' : formatMs(r.msPerGradient),
        r.peakRssMb === null ? '-' : `${Math.round(r.peakRssMb)} MB`,
        r.vsPytorch === null ? '-' : `${r.vsPytorch.toFixed(2)}x`,
        r.error ?? '']),
    ),
    '',
    'native = the wasm backend with oneDNN\'s kernels (convolutions, matrix products) and ours (batch norm, pooling gradients); PyTorch = Debian\'s python3-torch, the same architectures (bench/gradient.py).',
    'vs PyTorch below 1.00x means faster than PyTorch.',
  ];
  process.stdout.write(`${out.join('\n')}\n`);
  return report;
}
