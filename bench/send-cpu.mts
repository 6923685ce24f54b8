/**
 * What one PL.SEND of a vector costs the two servers, in CPU rather than wall time (on these
 * shared machines wall time drifts with the load; a server's CPU per vector drifts less):
 * `INFO cpu` of both servers around S sends of the same vector. With several module builds,
 * the builds alternate (a, b, a, b, ...) so drift falls on all of them.
 *
 *   npx tsx bench/send-cpu.mts [--modules A.so,B.so] [--pairs 3] [--sends 10]
 *                              [--params 11172810] [--chunk 262144] [--json]
 *
 * Without --modules, the build scripts/setup.sh made (or PEERLESS_MODULE).
 */
import { connectRedis, closeRedis } from '../src/tensor/redis-client.ts';
import { MODULE_ENV } from '../src/cluster/module-path.ts';
import { moduleBuilds, scriptArgs } from './script-args.ts';
import { serverCpuMs } from './server-cpu.ts';
import { startRedisServer } from '../src/cluster/redis-server.ts';
import { median } from './stats.ts';

const USAGE = `usage: npx tsx bench/send-cpu.mts [--modules A.so,B.so] [--pairs 3] [--sends 10] [--params 11172810] [--chunk 262144] [--json]
  The two servers' CPU per PL.SEND of one vector (INFO cpu around --sends sends), each module
  build measured --pairs times, the builds alternating. Without --modules: the build setup made.`;
const { option, has } = scriptArgs('send-cpu', USAGE, ['--modules', '--pairs', '--sends', '--params', '--chunk']);
const modules = moduleBuilds('send-cpu', option('--modules', ''));
const pairs = Number(option('--pairs', '3')), sends = Number(option('--sends', '10'));
const params = Number(option('--params', '11172810')), chunk = option('--chunk', '262144');
for (const [name, v] of [['--pairs', pairs], ['--sends', sends], ['--params', params]] as const) {
  if (!Number.isInteger(v) || v < 1) {
    process.stderr.write(`send-cpu: ${name} needs a whole number of at least 1, got "${option(name, '')}"\n`);
    process.exit(2);
  }
}

/** Server CPU per vector sent with one module build: [sender, receiver], ms. */
async function measure(module: string): Promise<[number, number]> {
  process.env[MODULE_ENV] = module;
  const servers = [await startRedisServer(), await startRedisServer()];
  const [from, to] = await Promise.all(servers.map((s) => connectRedis({ url: s.url })));
  try {
    await from.sendCommand(['PL.ZEROS', 'src', String(params)]);
    await to.sendCommand(['PL.ZEROS', 'dst', String(params)]);
    const send = ['PL.SEND', 'src', '0', String(params), '127.0.0.1', new URL(servers[1]!.url).port, 'dst', '0', 'CHUNK', chunk];
    await from.sendCommand(send); // warms the destination's buffers
    const before = [await serverCpuMs(from), await serverCpuMs(to)];
    for (let i = 0; i < sends; i++) await from.sendCommand(send);
    const after = [await serverCpuMs(from), await serverCpuMs(to)];
    return [(after[0]! - before[0]!) / sends, (after[1]! - before[1]!) / sends];
  } finally {
    await Promise.allSettled([closeRedis(from), closeRedis(to)]);
    await Promise.allSettled(servers.map((s) => s.stop()));
  }
}

const samples = modules.map(() => ({ sender: [] as number[], receiver: [] as number[] }));
for (let p = 0; p < pairs; p++) {
  for (const [i, m] of modules.entries()) {
    const [s, r] = await measure(m);
    samples[i]!.sender.push(s);
    samples[i]!.receiver.push(r);
    process.stderr.write(`pair ${p + 1}/${pairs} ${m}: sender ${s.toFixed(1)} ms, receiver ${r.toFixed(1)} ms of CPU per vector\n`);
  }
}
const rows = modules.map((module, i) => ({
  module, senderCpuMs: median(samples[i]!.sender), receiverCpuMs: median(samples[i]!.receiver),
  senderSamples: samples[i]!.sender, receiverSamples: samples[i]!.receiver,
}));
if (has('--json')) process.stdout.write(`${JSON.stringify({ benchmark: 'send-cpu', params, chunk: Number(chunk), sends, pairs, rows }, null, 2)}\n`);
else {
  process.stdout.write(`PL.SEND of ${params.toLocaleString('en-US')} float32 (${(params * 4 / 1e6).toFixed(1)} MB) between two servers on loopback: server CPU per vector, median of ${pairs} runs of ${sends} sends, builds alternating\n\n`);
  process.stdout.write('| module | sender CPU | receiver CPU | sender vs first | receiver vs first |\n| --- | ---: | ---: | ---: | ---: |\n');
  for (const r of rows) {
    process.stdout.write(`| ${r.module} | ${r.senderCpuMs.toFixed(1)} ms | ${r.receiverCpuMs.toFixed(1)} ms | ${(r.senderCpuMs / rows[0]!.senderCpuMs).toFixed(2)}x | ${(r.receiverCpuMs / rows[0]!.receiverCpuMs).toFixed(2)}x |\n`);
  }
}
