/**
 * One row of `peerless bench compute`, in its own process (run by bench/compute.ts):
 *   node bench/compute-one.mjs MODEL BATCH BACKEND RUNS
 * prints one JSON line { msPerGradient, peakRssMb, checkpointed }: the median of RUNS gradients
 * after a warm-up, the process's peak resident memory, and whether the gradient ran
 * checkpointed (the model's default, as in a function: src/model/checkpoint.ts).
 */
import { initBackend, type BackendChoice } from '../src/model/backend.ts';
import { computeGradient } from '../src/model/gradient.ts';
import { buildModel, checkpointedByDefault } from '../src/model/zoo.ts';
import { median } from './stats.ts';

const [model, batchArg, backend, runsArg] = process.argv.slice(2);
const batch = Number(batchArg), runs = Number(runsArg);
const got = await initBackend(backend as BackendChoice);
if (got !== backend) throw new Error(`asked for backend ${backend}, got ${got}`);

const images = new Uint8Array(batch * 784).map((_, i) => (i * 2654435761) >>> 24);
const labels = new Uint8Array(batch).map((_, i) => i % 10);
const m = buildModel(model!, 1, 0);
const opts = { checkpoint: checkpointedByDefault(model!) };
computeGradient(m, images, labels, opts); // warm-up: kernel setup, heap growth
const times: number[] = [];
for (let i = 0; i < runs; i++) {
  const t = performance.now();
  computeGradient(m, images, labels, opts);
  times.push(performance.now() - t);
}
process.stdout.write(`${JSON.stringify({ msPerGradient: median(times), peakRssMb: process.resourceUsage().maxRSS / 1024, checkpointed: opts.checkpoint })}\n`);
