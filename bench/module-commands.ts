/**
 * Server-side timings of the module's hot commands at ResNet-18 size (11,172,810 float32,
 * 44.7 MB), read from Redis's own SLOWLOG (slowlog-log-slower-than 0), so client parsing
 * and network time are not counted. With several module builds, one server per build, and
 * each command runs on them in turn (a, b, a, b, ...), so the machine's drift falls on all of
 * them alike and the ratio between builds means something on a shared machine.
 *
 *   npx tsx bench/module-commands.ts [--modules A.so,B.so] [--repeats 5] [--json]
 *
 * Without --modules, the build scripts/setup.sh made (or PEERLESS_MODULE).
 */
import { MODULE_ENV } from '../src/cluster/module-path.ts';
import { moduleBuilds, scriptArgs } from './script-args.ts';
import { startRedisServer, type RedisServer } from '../src/cluster/redis-server.ts';
import { closeRedis, connectRedis, type Redis } from '../src/tensor/redis-client.ts';
import { median } from './stats.ts';

const USAGE = `usage: npx tsx bench/module-commands.ts [--modules A.so,B.so] [--repeats 5] [--json]
  Server-side time (SLOWLOG) of the module's hot commands on a ResNet-18-sized tensor, each
  build on its own server, the builds taking turns command by command. Without --modules: the
  build setup made.`;
const { option, has } = scriptArgs('module-commands', USAGE, ['--modules', '--repeats']);
const modules = moduleBuilds('module-commands', option('--modules', ''));
const REPEATS = Number(option('--repeats', '5'));
if (!Number.isInteger(REPEATS) || REPEATS < 1) {
  process.stderr.write(`module-commands: --repeats needs a whole number of at least 1, got "${option('--repeats', '')}"\n`);
  process.exit(2);
}
const json = has('--json');
const N = 11_172_810;

function randomTensor(n: number, scale = 1): Buffer {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (Math.random() - 0.5) * scale;
  return Buffer.from(a.buffer);
}

type Command = (string | Buffer)[];
/** One measured command: set-up run once on each server, then `runs`, each timed on every server in turn. */
interface Case {
  label: string;
  setup?: Command[];
  runs: Command[];
}

const grads = Array.from({ length: REPEATS }, () => randomTensor(N, 1e-2));
const peers = ['peer0', 'peer1', 'peer2', 'peer3'];
// In order: the accumulation cases build on each other's state.
const cases: Case[] = [
  // The first arrival becomes the sum without copying; measure the adds that follow.
  { label: 'PL.ACCUM (add one gradient into the sum)', setup: [['PL.ACCUM', 'sum', 'avg', 'first', String(REPEATS + 2), grads[0]!]], runs: grads.map((g, i) => ['PL.ACCUM', 'sum', 'avg', `g${i}`, String(REPEATS + 2), g]) },
  { label: 'PL.ACCUM (last arrival: add + write average)', runs: [['PL.ACCUM', 'sum', 'avg', 'last', String(REPEATS + 2), grads[0]!]] },
  // Next round: the average key already exists, so the last arrival rewrites mapped memory.
  { label: 'PL.ACCUM (last arrival, next round)', setup: [['DEL', 'sum:ids'], ['PL.ACCUM', 'sum', 'avg', 'first', '2', grads[0]!]], runs: [['PL.ACCUM', 'sum', 'avg', 'last', '2', grads[1 % REPEATS]!]] },
  { label: 'PL.SGD momentum 0.9 (velocity exists)', runs: grads.map(() => ['PL.SGD', 'params', 'grad', 'vel', '0.01', '0.9']) },
  { label: 'PL.SGD momentum 0.9 nesterov + WD', runs: grads.map(() => ['PL.SGD', 'params', 'grad', 'vel', '0.01', '0.9', 'WD', '1e-4', 'NESTEROV']) },
  { label: 'PL.ADAM', runs: grads.map(() => ['PL.ADAM', 'params', 'grad', 'm', 'v', 'step', '0.001']) },
  { label: 'PL.CHECKSUM', runs: grads.map(() => ['PL.CHECKSUM', 'params']) },
  { label: 'PL.SCALE', runs: grads.map(() => ['PL.SCALE', 'grad', '1']) },
  { label: 'PL.AGGREGATE MEAN over 4 peers', setup: peers.map((p, k) => ['PL.SET', p, grads[k % REPEATS]!]), runs: grads.map(() => ['PL.AGGREGATE', 'agg', 'MEAN', '4', ...peers]) },
  { label: 'PL.AGGREGATE MEAN over 3 peers', runs: grads.map(() => ['PL.AGGREGATE', 'agg', 'MEAN', '3', ...peers.slice(0, 3)]) },
  { label: 'PL.AGGREGATE MEDIAN over 4 peers', runs: [['PL.AGGREGATE', 'agg', 'MEDIAN', '4', ...peers]] },
  { label: 'PL.GETRANGE 1M elements (4 MB)', runs: grads.map(() => ['PL.GETRANGE', 'params', '0', String(1 << 20)]) },
];

/** Server-side microseconds of one command, from the slow log. */
async function timed(client: Redis, command: Command): Promise<number> {
  await client.sendCommand(['SLOWLOG', 'RESET']);
  await client.sendCommand(command);
  const log = (await client.sendCommand(['SLOWLOG', 'GET', '10'])) as unknown[][];
  const entry = log.find((e) => String((e[3] as unknown[])[0]).toUpperCase() === String(command[0]).toUpperCase());
  return Number(entry?.[2]);
}

const servers: RedisServer[] = [];
const clients: Redis[] = [];
const rows: { command: string; msMedian: number[]; ratio: number | null }[] = [];
try {
  for (const m of modules) {
    process.env[MODULE_ENV] = m;
    const server = await startRedisServer({ config: { 'slowlog-log-slower-than': '0', 'slowlog-max-len': '1024' } });
    servers.push(server);
    const client = await connectRedis({ url: server.url });
    clients.push(client);
    await client.sendCommand(['PL.SET', 'params', randomTensor(N)]);
    await client.sendCommand(['PL.SET', 'grad', grads[0]!]);
  }
  if (!json) {
    process.stdout.write(`tensor: ${N} float32 = ${((N * 4) / 1e6).toFixed(1)} MB, ${REPEATS} runs each, server side (SLOWLOG)${modules.length > 1 ? ', builds taking turns' : ''}\n`);
    process.stdout.write(`${'command'.padEnd(46)}${modules.map((_, i) => `build ${String.fromCharCode(65 + i)} median`.padStart(18)).join('')}${modules.length > 1 ? '    B/A' : ''}\n`);
  }
  for (const c of cases) {
    for (const client of clients) for (const s of c.setup ?? []) await client.sendCommand(s);
    const usec: number[][] = clients.map(() => []);
    for (const run of c.runs) for (const [i, client] of clients.entries()) usec[i]!.push(await timed(client, run));
    const ms = usec.map((u) => median(u) / 1000);
    const row = { command: c.label, msMedian: ms.map((x) => Number(x.toFixed(2))), ratio: ms.length > 1 ? Number((ms[1]! / ms[0]!).toFixed(2)) : null };
    rows.push(row);
    if (!json) process.stdout.write(`${c.label.padEnd(46)}${ms.map((x) => `${x.toFixed(2)} ms`.padStart(18)).join('')}${row.ratio !== null ? `${row.ratio.toFixed(2)}x`.padStart(7) : ''}\n`);
  }
  if (json) process.stdout.write(`${JSON.stringify({ modules, tensorElements: N, repeats: REPEATS, rows })}\n`);
} finally {
  for (const c of clients) await closeRedis(c);
  for (const s of servers) await s.stop();
}
