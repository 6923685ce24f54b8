/**
 * Figures for the local platform: warm round-trip overhead of the pool, and the gradient
 * function's time breakdown (cnn, batch 64, real MNIST) on warm workers.
 *
 *   npx tsx src/platform/local/measure.ts [--model cnn] [--width 1] [--batch 64] [--runs 30] [--json]
 */
import { parseArgs } from 'node:util';
import { startRedisServer } from '../../cluster/redis-server.ts';
import { inputSize, MNIST_SPEC } from '../../data/spec.ts';

const PIXELS = inputSize(MNIST_SPEC);
import { loadMnist } from '../../data/mnist.ts';
import type { GradientEvent } from '../../functions/events.ts';
import { initBackend } from '../../model/backend.ts';
import { getFlatParams, getLayout } from '../../model/flat.ts';
import { buildModel } from '../../model/zoo.ts';
import { toBytes } from '../../tensor/bytes.ts';
import { closeRedis, connectRedis } from '../../tensor/redis-client.ts';
import { LocalPlatform } from './local-platform.ts';
import { gradientEvent } from '../../peer/events.ts';

const { values: a } = parseArgs({
  options: {
    model: { type: 'string', default: 'cnn' },
    width: { type: 'string', default: '1' },
    batch: { type: 'string', default: '64' },
    runs: { type: 'string', default: '30' },
    json: { type: 'boolean', default: false },
  },
});
const width = Number(a.width), batch = Number(a.batch), runs = Number(a.runs);

const quantile = (xs: number[], q: number) => [...xs].sort((x, y) => x - y)[Math.min(xs.length - 1, Math.floor(q * xs.length))];
const stats = (xs: number[]) => ({ p50: +quantile(xs, 0.5).toFixed(3), p90: +quantile(xs, 0.9).toFixed(3), min: +Math.min(...xs).toFixed(3) });

process.env.PEERLESS_BACKEND ??= 'wasm';
const server = await startRedisServer();
const client = await connectRedis({ url: server.url });
const out: Record<string, unknown> = { model: a.model, width, batch, runs, backend: process.env.PEERLESS_BACKEND };
try {
  // What a peer would have stored: layout hash, params, `runs` batches of real MNIST.
  await initBackend('wasm');
  const model = buildModel(a.model, width, 1);
  const layout = getLayout(model);
  const train = loadMnist('train');
  const tx = client.multi().set('model:layout', layout.hash).addCommand(['PL.SET', 'model:params', toBytes(getFlatParams(model))]);
  for (let i = 0; i < runs; i++) {
    tx.set(`data:batch:${i}:x`, Buffer.from(train.inputs.subarray(i * batch * PIXELS, (i + 1) * batch * PIXELS)));
    tx.set(`data:batch:${i}:y`, Buffer.from(train.labels.subarray(i * batch, (i + 1) * batch)));
  }
  await tx.exec();
  out.params = layout.size;
  const event = (i: number, round: number): GradientEvent =>
    gradientEvent({ redis: { url: server.url }, model: { name: a.model, width }, layoutHash: layout.hash }, i, { sumKey: `r:${round}:gsum`, avgKey: `r:${round}:gavg`, expected: runs });

  // Cold: a fresh pool's first gradient (worker start + backend + model build included).
  const cold = new LocalPlatform({ workers: 1 });
  let t = performance.now();
  await cold.invoke('gradient', event(0, 0));
  out.coldGradientMs = +(performance.now() - t).toFixed(1);
  await cold.close();

  const p = new LocalPlatform({ workers: 1 });
  t = performance.now();
  await p.warm([{ model: { name: a.model, width }, samples: MNIST_SPEC }]);
  out.warmUpMs = +(performance.now() - t).toFixed(1);

  // Pool overhead: empty round trips on a warm worker.
  for (let i = 0; i < 200; i++) await p.ping();
  const pings: number[] = [];
  for (let i = 0; i < 2000; i++) pings.push(await p.ping());
  out.pingMs = stats(pings);

  // Gradient, one at a time on one warm worker: the function's own breakdown, and the
  // wall time the caller sees minus the handler's time (the platform's overhead).
  const load: number[] = [], compute: number[] = [], push: number[] = [], wall: number[] = [], over: number[] = [];
  await p.invoke('gradient', event(0, 1));
  for (let i = 0; i < runs; i++) {
    t = performance.now();
    const r = await p.invoke('gradient', event(i, 2));
    const w = performance.now() - t;
    const rec = p.invocations().at(-1)!;
    load.push(r.timings.loadMs); compute.push(r.timings.computeMs); push.push(r.timings.pushMs);
    wall.push(w); over.push(w - rec.durationMs);
  }
  out.gradient = { loadMs: stats(load), computeMs: stats(compute), pushMs: stats(push), wallMs: stats(wall), platformOverheadMs: stats(over) };
  await p.close();

  // Throughput: `runs` batches of one round on a pool of every core.
  const all = new LocalPlatform();
  await all.warm([{ model: { name: a.model, width }, samples: MNIST_SPEC }]);
  t = performance.now();
  await Promise.all(Array.from({ length: runs }, (_, i) => all.invoke('gradient', event(i, 3))));
  const roundMs = performance.now() - t;
  out.round = { workers: all.workerThreadIds().length, batches: runs, wallMs: +roundMs.toFixed(1), perBatchMs: +(roundMs / runs).toFixed(1), metrics: all.metrics() };
  await all.close();
} finally {
  await closeRedis(client);
  await server.stop();
}

if (a.json) {
  console.log(JSON.stringify(out, null, 2));
} else {
  const g = out.gradient as Record<string, { p50: number; p90: number }>;
  const r = out.round as { workers: number; batches: number; wallMs: number; perBatchMs: number };
  console.log(`local platform, ${a.model} width ${width} (${out.params} params), batch ${batch}, ${runs} runs, backend ${out.backend}`);
  console.log(`  cold first gradient (worker start + backend + model): ${out.coldGradientMs} ms; warm-up of a pre-warmed pool: ${out.warmUpMs} ms`);
  console.log(`  warm empty round trip: p50 ${(out.pingMs as { p50: number }).p50} ms, p90 ${(out.pingMs as { p90: number }).p90} ms`);
  for (const k of ['loadMs', 'computeMs', 'pushMs', 'wallMs', 'platformOverheadMs']) console.log(`  gradient ${k.padEnd(18)} p50 ${g[k].p50.toFixed(2).padStart(8)}  p90 ${g[k].p90.toFixed(2).padStart(8)}`);
  console.log(`  one round of ${r.batches} batches on ${r.workers} workers: ${r.wallMs} ms (${r.perBatchMs} ms per batch)`);
}
