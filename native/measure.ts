/**
 * Server-side timings of the module's hot commands at ResNet-18 size (11,172,810 float32,
 * 44.7 MB), read from Redis's own SLOWLOG (slowlog-log-slower-than 0), so client parsing
 * and network time are not counted. Run: npx tsx native/measure.ts [repeats]
 */
import { createClient } from 'redis';
import { startRedisServer } from '../src/cluster/redis-server.ts';

const N = 11_172_810;
const REPEATS = Number(process.argv[2] ?? 5);

function randomTensor(n: number, scale = 1): Buffer {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (Math.random() - 0.5) * scale;
  return Buffer.from(a.buffer);
}

const server = await startRedisServer({ config: { 'slowlog-log-slower-than': '0', 'slowlog-max-len': '1024' } });
const client = createClient({ url: server.url });
await client.connect();

/** Runs `args` REPEATS times; returns the server-side microseconds of each run. */
async function time(label: string, args: (string | Buffer)[][]): Promise<void> {
  const usec: number[] = [];
  for (const a of args) {
    await client.sendCommand(['SLOWLOG', 'RESET']);
    await client.sendCommand(a);
    const log = (await client.sendCommand(['SLOWLOG', 'GET', '10'])) as unknown[][];
    const entry = log.find((e) => String((e[3] as unknown[])[0]).toUpperCase() === String(a[0]).toUpperCase());
    usec.push(Number(entry?.[2]));
  }
  usec.sort((x, y) => x - y);
  const ms = (u: number) => (u / 1000).toFixed(2);
  console.log(`${label.padEnd(44)} median ${ms(usec[Math.floor(usec.length / 2)])} ms   min ${ms(usec[0])} ms   max ${ms(usec[usec.length - 1])} ms`);
}

try {
  const grads = Array.from({ length: REPEATS }, () => randomTensor(N, 1e-2));
  await client.sendCommand(['PL.SET', 'params', randomTensor(N)]);
  await client.sendCommand(['PL.SET', 'grad', grads[0]]);
  console.log(`tensor: ${N} float32 = ${((N * 4) / 1e6).toFixed(1)} MB, ${REPEATS} runs each (server side, SLOWLOG)`);

  // The first arrival becomes the sum without copying; measure the adds that follow.
  await client.sendCommand(['PL.ACCUM', 'sum', 'avg', 'first', String(REPEATS + 2), grads[0]]);
  await time('PL.ACCUM (add one gradient into the sum)', grads.map((g, i) => ['PL.ACCUM', 'sum', 'avg', `g${i}`, String(REPEATS + 2), g]));
  await time('PL.ACCUM (last arrival: add + write average)', [['PL.ACCUM', 'sum', 'avg', 'last', String(REPEATS + 2), grads[0]]]);
  // Next round: the average key already exists, so the last arrival rewrites mapped memory.
  await client.sendCommand(['DEL', 'sum:ids']);
  await client.sendCommand(['PL.ACCUM', 'sum', 'avg', 'first', '2', grads[0]]);
  await time('PL.ACCUM (last arrival, next round)', [['PL.ACCUM', 'sum', 'avg', 'last', '2', grads[1]]]);
  await time('PL.SGD momentum 0.9 (velocity exists)', grads.map(() => ['PL.SGD', 'params', 'grad', 'vel', '0.01', '0.9']));
  await time('PL.SGD momentum 0.9 nesterov + WD', grads.map(() => ['PL.SGD', 'params', 'grad', 'vel', '0.01', '0.9', 'WD', '1e-4', 'NESTEROV']));
  await time('PL.ADAM', grads.map(() => ['PL.ADAM', 'params', 'grad', 'm', 'v', 'step', '0.001']));
  await time('PL.CHECKSUM', grads.map(() => ['PL.CHECKSUM', 'params']));
  await time('PL.SCALE', grads.map(() => ['PL.SCALE', 'grad', '1']));
  for (let k = 0; k < 4; k++) await client.sendCommand(['PL.SET', `peer${k}`, grads[k % grads.length]]);
  const peers = ['peer0', 'peer1', 'peer2', 'peer3'];
  await time('PL.AGGREGATE MEAN over 4 peers', grads.map(() => ['PL.AGGREGATE', 'agg', 'MEAN', '4', ...peers]));
  await time('PL.AGGREGATE MEDIAN over 4 peers', [['PL.AGGREGATE', 'agg', 'MEDIAN', '4', ...peers]]);
  await time('PL.GETRANGE 1M elements (4 MB)', grads.map(() => ['PL.GETRANGE', 'params', '0', String(1 << 20)]));
} finally {
  await client.close();
  await server.stop();
}
