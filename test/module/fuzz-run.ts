/**
 * `npm run fuzz [-- COUNT [SEED]]`: the module fuzzer's full run (test/module/fuzz.ts) on a
 * real redis-server with the module, 100,000 commands by default. Prints what happened and
 * exits non-zero when the server went down, an error was not a one-line module error, or a
 * key no command named changed.
 */
import { fuzzModule } from './fuzz.ts';
import { start, stopAll } from './helpers.ts';

const count = Number(process.argv[2] ?? 100_000);
const seed = Number(process.argv[3] ?? Date.now() % 2 ** 31);
if (!Number.isInteger(count) || count < 1 || !Number.isInteger(seed)) {
  process.stderr.write('usage: npm run fuzz -- [COUNT >= 1] [SEED]\n');
  process.exit(2);
}
const { server, client } = await start();
const t = performance.now();
let failed = false;
try {
  const r = await fuzzModule(client, count, seed);
  const alive = (await client.ping()) === 'PONG';
  process.stdout.write([
    `module fuzzer: ${r.commands.toLocaleString()} commands (seed ${seed}) in ${((performance.now() - t) / 1000).toFixed(1)} s`,
    `  accepted ${r.ok.toLocaleString()}, refused with a one-line error ${r.errors.toLocaleString()}`,
    `  server alive: ${alive ? 'yes' : 'NO'}; keys no command named unchanged: ${r.bystandersIntact ? 'yes' : 'NO'}; used memory ${(r.usedMemoryBytes / 2 ** 20).toFixed(1)} MB`,
    ...(r.strange.length ? ['  errors that are not the module\'s:', ...r.strange.map((m) => `    ${m}`)] : []),
  ].join('\n') + '\n');
  failed = !alive || !r.bystandersIntact || r.strange.length > 0;
} catch (err) {
  process.stdout.write(`module fuzzer: the server stopped answering (seed ${seed}): ${(err as Error).message}\n`);
  failed = true;
} finally {
  await stopAll(client, server);
}
process.exit(failed ? 1 : 0);
