import { isIP } from 'node:net';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EXCHANGES, type Exchange } from '../config/exchanges.ts';
import type { PlatformChoice } from '../platform/index.ts';
import { parseShard } from './parse.ts';
import { addTrainingOptions, ROUNDS_HELP } from './training-flags.ts';

// Each command's code (TensorFlow.js, node-redis, the AWS SDK...) is imported by its action,
// when it runs: --help and --version load none of it.

// The training flags come with their defaults written out (training-flags.ts), so --help
// answers without the configuration's schema (zod, ~100 ms to load): it is loaded by the
// actions that build a configuration (training-options.ts).
const trainingConfigFrom = async (o: Record<string, unknown>) => (await import('./training-options.ts')).trainingConfigFrom(o);

/** Parses an integer option, with the option's name in the error. */
const int = (name: string, min = 1) => (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer >= ${min}, got "${v}"`);
  return n;
};
const niceValue = (v: string): number => {
  const n = int('--server-nice', -20)(v);
  if (n > 19) throw new InvalidArgumentError(`--server-nice must be between -20 and 19, got "${v}"`);
  return n;
};
const intList = (name: string) => (v: string): number[] => v.split(',').map((x) => int(name)(x.trim()));
const exchangeList = (v: string): Exchange[] => v.split(',').map((x) => {
  const e = x.trim();
  if (!(EXCHANGES as readonly string[]).includes(e)) throw new InvalidArgumentError(`unknown exchange "${e}": choose from ${EXCHANGES.join(', ')}`);
  return e as Exchange;
});

function addPlatformOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--platform <kind>', 'where the functions run').choices(['local', 'http', 'aws-lambda']).default('local'))
    .addOption(new Option('--workers <n>', 'local platform: warm worker threads (default: cores)').argParser(int('--workers')))
    .option('--function-url <url>', 'http platform: gateway URL, e.g. the address of `peerless function serve`')
    .option('--elastic', 'http platform: every call gets an instance of its own (a gateway in front of Lambda), so a call slow to answer, or failing fast, gets another copy; not for `function serve`, which queues (aws-lambda: always)')
    .option('--region <region>', 'aws-lambda platform: AWS region (default: AWS configuration)')
    .option('--endpoint <url>', 'aws-lambda platform: custom Lambda endpoint (LocalStack, serverless-offline)')
    .addOption(new Option('--memory <mb>', 'memory billed per invocation in the cost estimate').argParser(int('--memory', 128)));
}

const platformFrom = async (o: Record<string, unknown>): Promise<PlatformChoice> => ({
  platform: o.platform as PlatformChoice['platform'],
  workers: o.workers as number | undefined,
  functionUrl: o.functionUrl as string | undefined,
  elastic: o.elastic === true,
  region: o.region as string | undefined,
  endpoint: o.endpoint as string | undefined,
  memoryMb: o.memory as number | undefined,
  // With a network password, the functions get their own user, derived from it.
  redisCredentials: typeof o.password === 'string' && o.password
    ? (await import('../peer/net/access.ts')).credentialsFor('functions', o.password) : undefined,
});

/** The platform a command's options name, started. */
const platformOf = async (o: Record<string, unknown>) => (await import('../platform/index.ts')).createPlatform(await platformFrom(o));

/** --advertise as a URL: HOST[:PORT] takes the scheme (and the port) of this peer's --redis. */
function advertiseUrl(given: string, redis: string): string {
  if (given.includes('://')) return given;
  const u = new URL(redis);
  const at = new URL(`${u.protocol}//${given}`);
  return `${u.protocol}//${at.hostname}:${at.port || u.port || '6379'}`;
}

/** --log-level and --log-format of the long-running commands (src/cli/log.ts). */
const logLevelOption = () => new Option('--log-level <level>', 'the least important log lines shown').choices(['debug', 'info', 'warn', 'error']).default('info');
const logFormatOption = () => new Option('--log-format <format>', 'text: plain lines for a person; json: one JSON object a line (pino), with time, level and fields').choices(['text', 'json']).default('text');
const logOf = async (o: { logLevel: string; logFormat: string }, base?: Record<string, unknown>) =>
  (await import('./log.ts')).createLog({ level: o.logLevel as never, format: o.logFormat as never, ...(base ? { base } : {}) });

/** Where `train --dashboard` serves the page when no port is given. */
const DASHBOARD_PORT = 8765;

const program = new Command('peerless')
  .description(
    'Peer-to-peer training of neural networks on serverless functions, with gradient averaging, ' +
      'aggregation and optimizer steps inside each peer\'s Redis (the peerless module).',
  )
  .version('0.1.0')
  .showHelpAfterError('(run with --help for usage)')
  // Usage errors (an unknown flag, a bad value) end below with exit code 2, as a run's own
  // failures end with 1; subcommands defined after this inherit it.
  .exitOverride();

addPlatformOptions(addTrainingOptions(
  program
    .command('train')
    .summary('train with N peers on this machine (the embedded default)')
    .description(
      'Start N redis-servers and N peers on this machine and train. Each peer offloads one gradient ' +
        'function per batch, averages in its Redis, exchanges with the others, aggregates and updates ' +
        'inside the database. Prints a line per peer while it runs and a summary at the end.',
    )
    .addOption(new Option('--peers <n>', 'peers (each with its own redis-server)').argParser(int('--peers')).default(4))
    .addOption(new Option('--min-peers <k>', 'the fewest live peers the run goes on with: below it the network stops and the run fails (default 1)').argParser(int('--min-peers')))
    .option('--json', 'print the summary as one JSON document on stdout')
    .option('--metrics <file>', 'write per-round metrics of every peer as JSON lines')
    .option('--data-dir <dir>', 'keep the redis-servers\' data here (AOF), so the run can be resumed')
    .option('--resume', 'continue a run from the state kept in --data-dir')
    .option('--password <secret>', 'the network secret: the peers\', functions\' and read-only observer\'s users on every peer\'s Redis derive from it (see peerless credentials); each Redis\'s owner password is its own')
    .option('--quiet', 'no progress output')
    .option('--tls', 'serve every peer\'s Redis over TLS only (rediss://), with a throwaway CA and certificate made for this run')
    .option('--advertise <host>', 'the host at which the functions reach this machine\'s redis-servers (needed with --platform aws-lambda: Lambda cannot reach 127.0.0.1)')
    .option('--bind <addr>', 'the address the redis-servers listen on (default: the --advertise host when it is an IP, else 127.0.0.1); other than loopback needs --password')
    .option('--save <dir>', 'write the trained model there: model.json and weights.bin (TensorFlow.js Layers format) and metadata.json')
    .addOption(new Option('--checkpoint-every <n>', 'also write the model every N rounds, into --save DIR/round-R (the model before round R)').argParser(int('--checkpoint-every')))
    .option('--plot <dir>', 'at the end, draw the run there, as peerless plot draws a metrics file: run.svg (loss per round and against wall time, time per phase, bytes) and learning-curve.svg')
    .addOption(new Option('--dashboard [port]', `serve a live dashboard of the run on http://127.0.0.1:PORT/ (default ${DASHBOARD_PORT}; 0: any free port)`).argParser(int('--dashboard', 0))),
))
  .addHelpText('after', `${ROUNDS_HELP}

Examples:
  peerless train                                     # 4 peers, small CNN, real MNIST
  peerless train --batches-per-round 2 --target-accuracy 0.97 --epochs 3
  peerless train --peers 8 --exchange sharded --metrics runs/rounds.jsonl
  peerless train --data-dir runs/a ... ; peerless train --data-dir runs/a --resume
  peerless train --save models/cnn              # then tf.loadLayersModel('file://models/cnn/model.json')
  peerless train --init models/cnn --rounds 50  # go on training (or fine-tune) a saved model
  peerless train --dashboard                         # watch it at http://127.0.0.1:8765/
  peerless train --dataset synthetic --model resnet18 --width 0.25 --rounds 20 --json

Ctrl-C stops every peer after the next round (state kept for --resume; exit 130). A second
Ctrl-C, or SIGTERM, quits at once (143); either way no redis-server or temporary directory is left.`)
  .action(async (o) => {
    if (o.resume && !o.dataDir) throw new Error('--resume needs --data-dir (where the run\'s state is kept)');
    if (o.checkpointEvery !== undefined && !o.save) throw new Error('--checkpoint-every needs --save DIR (the checkpoints go into DIR/round-R)');
    if (o.platform === 'aws-lambda' && !o.advertise) {
      throw new Error('--platform aws-lambda needs --advertise HOST: the functions run in AWS and cannot reach this machine\'s redis-servers at 127.0.0.1 (see docs/deploy-lambda.md)');
    }
    const config = await trainingConfigFrom(o);
    // Before any worker, server or page starts: what this machine and this data can hold.
    (await import('../cluster/local-limits.ts')).checkLocalPeers(config, o.peers);
    // --tls: a throwaway CA, trusted by this process and (through the environment) its functions.
    const tlsDir = o.tls ? mkdtempSync(join(tmpdir(), 'peerless-tls-')) : undefined;
    // The certificate names the advertised host too, which the functions and peers connect to.
    const names = o.advertise ? ['IP:127.0.0.1', 'DNS:localhost', `${isIP(o.advertise) ? 'IP' : 'DNS'}:${o.advertise}`] : undefined;
    const tls = tlsDir ? (await import('../cluster/tls.ts')).makeLocalTls(tlsDir, names) : undefined;
    if (tls) process.env[(await import('../tensor/redis-client.ts')).TLS_CA_ENV] = tls.ca;
    // Removed on the way out too, when a signal ends the run at once.
    if (tlsDir) process.once('exit', () => rmSync(tlsDir, { recursive: true, force: true }));
    const dashboard = o.dashboard === undefined ? undefined
      : await (await import('./dashboard/server.ts')).startDashboard({ port: o.dashboard === true ? DASHBOARD_PORT : o.dashboard });
    if (dashboard) process.stderr.write(`dashboard: ${dashboard.url}\n`);
    const platform = await platformOf(o).catch(async (err: Error) => { await dashboard?.close(); throw err; });
    const backend = (platform as { computeBackend?: string }).computeBackend;
    if (backend && !o.json && !o.quiet) {
      const addon = backend === 'wasm' && !process.env.PEERLESS_BACKEND ? (await import('../model/native-backend.ts')).nativeAddon() : null;
      const why = addon instanceof Error ? ` (${addon.message})` : backend === 'native' ? ' (wasm with oneDNN\'s kernels)' : '';
      process.stderr.write(`functions compute on: ${backend}${why}\n`);
    }
    try {
      const [{ train }, { runFailed }] = await Promise.all([import('./commands/train.ts'), import('../cluster/run-outcome.ts')]);
      const s = await train({ peers: o.peers, config, platform, json: o.json, metrics: o.metrics, dataDir: o.dataDir, resume: o.resume, password: o.password, quiet: o.quiet, tls, advertise: o.advertise, bind: o.bind, saveDir: o.save, checkpointEvery: o.checkpointEvery, dashboard, minPeers: o.minPeers, plotDir: o.plot });
      if (runFailed(s)) process.exitCode = 1;
    } finally {
      await platform.close();
      await dashboard?.close();
      if (tlsDir) rmSync(tlsDir, { recursive: true, force: true });
    }
  });

addPlatformOptions(addTrainingOptions(
  program
    .command('peer')
    .summary('run one peer against your Redis, for runs across machines')
    .description(
      'Run one peer against a Redis you run (with the module: redis-server --loadmodule ' +
        'native/build/peerless.so). Without --bootstrap it founds a network with the given training ' +
        'options; with --bootstrap it joins the network of that peer\'s Redis and uses its options.',
    )
    .requiredOption('--id <id>', 'this peer\'s id (unique in the network; peers aggregate in id order)')
    .requiredOption('--redis <url>', 'this peer\'s own Redis, with its own password, e.g. redis://:OWNER_PASSWORD@127.0.0.1:6379')
    .option('--advertise <address>', 'the address other peers and functions use for this Redis: HOST[:PORT] or a URL (default: --redis, without its password); needed with --platform aws-lambda when --redis is loopback')
    .option('--password <secret>', 'the network secret: other peers, functions and observers log in to this Redis as users derived from it, each allowed only its part (see peerless credentials)')
    .option('--bootstrap <url>', 'the Redis address of any live peer of the network to join')
    .requiredOption('--shard <i/n>', 'the part of the data this peer trains on, e.g. 0/3', parseShard)
    .option('--json', 'print the outcome as one JSON document on stdout'),
))
  .addOption(logLevelOption())
  .addOption(logFormatOption())
  .addHelpText('after', `${ROUNDS_HELP}

A three-machine example (each machine runs its own redis-server with the module, reachable by
the others; functions run on each machine's local pool, or pass --platform http/aws-lambda):

  # machine A (10.0.0.1) founds the network
  # (each Redis has a password of its own, OWN; SECRET is the network's, shared by the peers)
  redis-server --port 6379 --bind 0.0.0.0 --requirepass "$OWN" --loadmodule ./native/build/peerless.so
  peerless peer --id a --redis "redis://:$OWN@10.0.0.1:6379" --password "$SECRET" --shard 0/3 \\
                --batches-per-round 2 --target-accuracy 0.98 --epochs 5

  # machine B (10.0.0.2) and machine C (10.0.0.3) join through A
  peerless peer --id b --redis "redis://:$OWN@10.0.0.2:6379" --password "$SECRET" --shard 1/3 --bootstrap redis://10.0.0.1:6379
  peerless peer --id c --redis "redis://:$OWN@10.0.0.3:6379" --password "$SECRET" --shard 2/3 --bootstrap redis://10.0.0.1:6379

  # anywhere: where is everyone? (as the read-only observer)
  peerless status --redis redis://10.0.0.1:6379 --password "$SECRET"

A joiner starts two rounds after the network's current one, with the parameters, optimizer
state and progress copied from its bootstrap peer. Ctrl-C leaves at the next round boundary
(exit 130); a second Ctrl-C, or SIGTERM, quits at once (143) and the others drop it.`)
  .action(async (o) => {
    const config = await trainingConfigFrom(o);
    const platform = await platformOf(o);
    try {
      const { runPeer } = await import('./commands/peer.ts');
      const advertise = o.advertise ? advertiseUrl(o.advertise, o.redis) : undefined;
      if (o.platform === 'aws-lambda' && !advertise && ['127.0.0.1', 'localhost', '[::1]'].includes(new URL(o.redis).hostname)) {
        throw new Error('--platform aws-lambda needs --advertise HOST[:PORT]: the functions run in AWS and cannot reach this peer\'s Redis at a loopback address');
      }
      const outcome = await runPeer({ log: await logOf(o, { peer: o.id }), id: o.id, redis: o.redis, advertise, password: o.password, bootstrap: o.bootstrap, shard: o.shard, config, platform, json: o.json });
      if (outcome.state === 'failed') process.exitCode = 1;
    } finally {
      await platform.close();
    }
  });

program
  .command('status')
  .summary('where every peer of a network is, read from any one peer\'s Redis')
  .description('Where every peer of a network is (round, phase, loss, heartbeat), read from any one peer\'s Redis.')
  .requiredOption('--redis <url>', 'the Redis of any peer of the network')
  .option('--password <secret>', 'the network secret (status logs in as the read-only observer)')
  .option('--json', 'print one JSON document on stdout (with --watch: one JSON object a line, each with its time)')
  .addOption(new Option('--watch [seconds]', 'read it again every SECONDS (default 2) until Ctrl-C: redrawn in place on a terminal').argParser((v) => {
    const s = Number(v);
    if (!(s > 0)) throw new InvalidArgumentError(`--watch must be a positive number of seconds, got "${v}"`);
    return s;
  }))
  .addHelpText('after', '\nExamples:\n  peerless status --redis redis://127.0.0.1:6379\n  peerless status --redis redis://10.0.0.5:6379 --password "$SECRET" --watch 5')
  .action(async (o) => {
    const status = await import('./commands/status.ts');
    if (o.watch === undefined) await status.networkStatus(o.redis, o.password, Boolean(o.json));
    else await status.watchNetworkStatus(o.redis, o.password, Boolean(o.json), (o.watch === true ? 2 : o.watch) * 1000);
  });

program
  .command('export')
  .summary('write a network\'s current model (TF.js Layers format) from a live peer or a stopped run')
  .description(
    'Writes the model of a network into DIR as train --save does (model.json, weights.bin, metadata.json): ' +
      'from a live peer\'s Redis (--redis), copied between two updates, or from a stopped run\'s state (--data-dir, ' +
      'the directory train --data-dir kept).',
  )
  .argument('<dir>', 'where to write the model')
  .option('--redis <url>', 'the Redis of any peer of a running network')
  .option('--password <secret>', 'the network secret (export logs in as the read-only observer)')
  .option('--data-dir <dir>', 'a stopped run\'s data directory (train --data-dir)')
  .option('--json', 'print one JSON document on stdout')
  .addHelpText('after', '\nExamples:\n  peerless export --redis redis://10.0.0.5:6379 --password "$SECRET" ./model\n  peerless train --data-dir runs/a --rounds 50 && peerless export --data-dir runs/a ./model')
  .action(async (dir: string, o) => { await (await import('./commands/export.ts')).exportNetwork(dir, o); });

program
  .command('plot')
  .summary('draw a run from its metrics file, or a benchmark\'s figure, as SVG or PNG')
  .description('Draw an SVG (or a PNG): a run from its metrics file (train --metrics) in four panels (loss and validation accuracy per round, loss against wall time, time per phase as stacked bars, bytes received per round), the original work\'s Figure 2 from `bench scaling --json`, its Tables 1 and 2 from `bench serverless --json` and `bench in-db --json`, or compute per backend from `bench compute --json`.')
  .argument('<file>', 'a metrics file (JSON lines) or a benchmark\'s --json output')
  .option('--out <file>', 'where to write the picture; a .png name writes a PNG (default: the input\'s name with .svg or .png)')
  .addOption(new Option('--format <format>', 'svg or png, when --out does not say (default svg)').choices(['svg', 'png']))
  .option('--json', 'print one JSON document on stdout')
  .addHelpText('after', '\nExamples:\n  npm run demo && peerless plot runs/demo/rounds.jsonl\n  peerless bench scaling --quick --json > scaling.json && peerless plot scaling.json --out figure2.svg\n  peerless plot runs/demo/rounds.jsonl --format png')
  .action(async (file: string, o: { out?: string; format?: 'svg' | 'png'; json?: boolean }) => {
    const { plot } = await import('./commands/plot.ts');
    const r = plot(file, o.out, o.format);
    if (r.skipped.length > 0) {
      const which = r.skipped.length === 1 ? `line ${r.skipped[0]} is` : `lines ${r.skipped.slice(0, 5).join(', ')}${r.skipped.length > 5 ? ', ...' : ''} are`;
      process.stderr.write(`peerless: plot: ${file} ${which} not JSON (truncated or damaged): skipped, the valid lines are plotted\n`);
      process.exitCode = 1;
    }
    process.stdout.write(o.json ? `${JSON.stringify(r)}\n` : `Wrote ${r.out} (${r.kind}, ${r.points} points)\n`);
  });

program
  .command('dashboard')
  .summary('a live dashboard of a running network, through any peer\'s Redis')
  .description(
    'Serve the live dashboard of a running network (as train --dashboard shows a local run), attached ' +
      'through any one peer\'s Redis: every member\'s phase, round, loss and validation, the curves, and ' +
      'members joining, leaving or unreachable. Reads only, as the read-only observer when --password is given.',
  )
  .requiredOption('--redis <url>', 'the Redis of any peer of the network')
  .option('--password <secret>', 'the network secret (the dashboard logs in as the read-only observer)')
  .addOption(new Option('--port <n>', `port on 127.0.0.1 (default ${DASHBOARD_PORT}; 0: any free port)`).argParser(int('--port', 0)).default(DASHBOARD_PORT))
  .addHelpText('after', `
Examples:
  peerless dashboard --redis redis://10.0.0.1:6379 --password s3cret   # then open http://127.0.0.1:${DASHBOARD_PORT}/`)
  .action(async (o) => {
    const { attachDashboard } = await import('./commands/dashboard.ts');
    const attached = await attachDashboard({ redis: o.redis, password: o.password, port: o.port });
    const { stopWithin, untilSignal } = await import('./signals.ts');
    const signalled = untilSignal();
    process.stderr.write(`dashboard: ${attached.dashboard.url} (Ctrl-C to stop)\n`);
    await stopWithin(await signalled, () => attached.stop());
  });

program
  .command('credentials')
  .summary('the functions\', observer\'s or peers\' Redis user and password, derived from the network secret')
  .description('The Redis user and password a role logs in with on every peer of a network with a secret, derived from it: give the functions\' to a Lambda function\'s environment or to `function serve`\'s shell; the observer\'s to a dashboard. Printed as environment lines.')
  .argument('<role>', 'functions (read the model and data, push gradients), observer (read-only) or peers (what one peer may do in another\'s Redis)')
  .requiredOption('--password <secret>', 'the network secret (the peers\' --password)')
  .option('--json', 'print one JSON document on stdout')
  .addHelpText('after', '\nExamples:\n  export $(peerless credentials functions --password "$SECRET")   # then: peerless function serve')
  .action(async (role: string, o: { password: string; json?: boolean }) => {
    const { credentialsFor } = await import('../peer/net/access.ts');
    if (role !== 'functions' && role !== 'observer' && role !== 'peers') throw new Error(`credentials: unknown role "${role}": expected functions, observer or peers`);
    const c = credentialsFor(role, o.password);
    process.stdout.write(o.json ? `${JSON.stringify(c)}\n` : `PEERLESS_REDIS_USERNAME=${c.username}\nPEERLESS_REDIS_PASSWORD=${c.password}\n`);
  });

program
  .command('stop')
  .summary('stop a whole network cleanly at the same round')
  .description('Stop a whole network cleanly: every peer finishes the same round and ends with identical parameters.')
  .requiredOption('--redis <url>', 'the Redis of any peer of the network')
  .option('--password <secret>', 'the network secret (stop logs in as the peers\' user, which may ask for a stop)')
  .addOption(new Option('--at-round <n>', 'the last round to run (default: two past the furthest peer\'s)').argParser(int('--at-round', 0)))
  .option('--json', 'print one JSON document on stdout')
  .action(async (o) => { await (await import('./commands/stop.ts')).stopNetwork(o.redis, o.password, o.atRound, Boolean(o.json)); });

const bench = program.command('bench').description('reproduce the original work\'s measurements, side by side in one run');
// A bench stopped by a signal leaves no redis-server behind.
bench.hook('preAction', async () => { (await import('./signals.ts')).exitOnSignal(); });

bench
  .command('in-db')
  .summary('Table 2: averaging and update inside vs outside the database')
  .description(
    'Table 2: push and average N gradients, and run one SGD-momentum update, inside the database ' +
      '(the peerless module) vs outside it (fetch into Node, compute, store back), on a ' +
      'ResNet-18-sized vector (11,172,810 float32).',
  )
  .option('--quick', 'a reduced run (15 and 4 gradients) that takes well under a minute')
  .option('--json', 'print one JSON document on stdout instead of the table')
  .addOption(new Option('--params <n>', 'elements per tensor').argParser(int('--params')))
  .addOption(new Option('--gradients <list>', 'comma-separated gradient counts (default 235,118,30,15)').argParser(intList('--gradients')))
  .addOption(new Option('--repeats <n>', 'update repetitions (median reported)').argParser(int('--repeats')))
  .addHelpText('after', '\nExamples:\n  peerless bench in-db --quick\n  peerless bench in-db --json > in-db.json')
  .action(async (o) => { await (await import('./commands/bench-in-db.ts')).benchInDb(o); });

bench
  .command('round')
  .summary('a round\'s data path alone (no compute) vs a gloo all-reduce of the same vector')
  .description(
    'Real redis-servers and peers run real rounds (averaging, exchange, aggregation, optimizer step, ' +
      'agreement) while G writers per peer push pre-made gradients in place of the functions; the ' +
      'same run times a torch.distributed gloo all-reduce of the same vector among as many processes ' +
      '(when python3-torch is installed) and one vector over loopback, the wire\'s limit.',
  )
  .option('--quick', '4 peers, 3 measured rounds: about a minute')
  .option('--json', 'print one JSON document on stdout instead of the table')
  .addOption(new Option('--params <n>', 'elements of the vector (default: ResNet-18\'s 11,172,810)').argParser(int('--params')))
  .addOption(new Option('--peer-counts <list>', 'comma-separated peer counts (default 4,8,12)').argParser(intList('--peer-counts')))
  .addOption(new Option('--exchange <list>', `comma-separated exchanges to run side by side: ${EXCHANGES.join(', ')} (default: all three)`).argParser(exchangeList))
  .addOption(new Option('--transfer <how>', 'how averages travel between Redis servers: direct (PL.SEND), relay (through the peer), or both side by side').choices(['direct', 'relay', 'both']).default('both'))
  .addOption(new Option('--writers <n>', 'gradients pushed per peer per round (default 4)').argParser(int('--writers')))
  .addOption(new Option('--rounds <n>', 'measured rounds after 2 warm-up (default 10)').argParser(int('--rounds')))
  .option('--no-allreduce', 'skip the gloo all-reduce')
  .addOption(new Option('--server-nice <n>', 'run the peers\' redis-servers under nice -n N (-20 to 19; below 0 needs root): with -10 they get the cores before the peers and writers, which shows how much of a stall is a server kept off its core').argParser(niceValue))
  .addHelpText('after', '\nExamples:\n  peerless bench round --quick\n  peerless bench round --peer-counts 4 --exchange sharded,sharded-step --json > round.json\n  peerless bench round --peer-counts 4 --exchange sharded-step --transfer direct --server-nice -10')
  .action(async (o) => { await (await import('./commands/bench-round.ts')).benchRound(o); });

bench
  .command('compute')
  .summary('one gradient on wasm, on the native backend (oneDNN) and in PyTorch, one core each')
  .description(
    'One gradient (forward, backward, loss) of the zoo\'s models on one thread, side by side in one run: ' +
      'the wasm backend, the native backend (wasm with oneDNN\'s kernels, where its addon is built) and ' +
      'PyTorch with the same architectures (where python3-torch is installed). Each row runs in its own ' +
      'process and reports its peak RSS: what one function needs.',
  )
  .option('--quick', 'batch 64 only, 2 runs each: cnn, vgg11 and resnet18 in under 5 minutes')
  .option('--json', 'print one JSON document on stdout instead of the table')
  .option('--models <list>', 'comma-separated models of the zoo (default cnn,vgg11,resnet18; densenet121 too)')
  .option('--batch-sizes <list>', 'comma-separated batch sizes (default 64,128)')
  .option('--backends <list>', 'comma-separated, of wasm, native and pytorch (default all three); vs PyTorch needs pytorch among them')
  .addOption(new Option('--runs <n>', 'measured runs per row after a warm-up (default 3)').argParser(int('--runs')))
  .addHelpText('after', '\nExamples:\n  peerless bench compute --quick\n  peerless bench compute --models resnet18 --batch-sizes 64 --json > compute.json\n  peerless bench compute --models vgg11,resnet18 --backends native,pytorch   (wasm takes minutes on these)')
  .action(async (o) => { await (await import('./commands/bench-compute.ts')).benchCompute(o); });

bench
  .command('chunks')
  .summary('the sweep behind the transfer path\'s chunk size: time per vector vs the longest stall')
  .description(
    'For each chunk size, on real redis-servers: G writers push a ResNet-18-sized gradient each in ' +
      'chunks (PL.PUSH), as functions do, and one vector is streamed between two Redis servers, as the ' +
      'exchange does; with the longest single command in the receiving Redis. Bigger chunks mean fewer ' +
      'round trips and longer stalls for every other client.',
  )
  .option('--json', 'print one JSON document on stdout instead of the table')
  .addOption(new Option('--params <n>', 'elements of the vector (default: ResNet-18\'s 11,172,810)').argParser(int('--params')))
  .addOption(new Option('--sizes <list>', 'comma-separated chunk sizes in KiB (default 64,256,1024,4096,16384)').argParser(intList('--sizes')))
  .addOption(new Option('--writers <n>', 'concurrent writers (default 4)').argParser(int('--writers')))
  .addOption(new Option('--repeats <n>', 'measured repeats per size (default 5)').argParser(int('--repeats')))
  .addHelpText('after', '\nExamples:\n  peerless bench chunks\n  peerless bench chunks --sizes 256,1024 --json > chunks.json')
  .action(async (o) => { await (await import('./commands/bench-chunks.ts')).benchChunks(o); });

bench
  .command('data')
  .summary('loading and sharding a dataset: time, and peak memory against the dataset\'s size')
  .description(
    'Loads a data source and cuts it into one shard per peer, as a local run does, in a process of its ' +
      'own: load and shard times, idle and peak resident memory. By default the source is MNIST\'s ' +
      '60,000 training images written out as a folder of PNGs (one subfolder per digit).',
  )
  .option('--json', 'print one JSON document on stdout instead of the table')
  .option('--dataset <source>', 'a source as train --dataset takes it (default: MNIST as a PNG folder)')
  .addOption(new Option('--peers <n>', 'shards to cut (default 4)').argParser(int('--peers')))
  .addHelpText('after', '\nExamples:\n  peerless bench data\n  peerless bench data --dataset csv:./iris.csv --json')
  .action(async (o) => { await (await import('./commands/bench-data.ts')).benchData(o); });

bench
  .command('faults')
  .summary('a round with failing functions against a clean round, and whether the results agree')
  .description(
    'The same seeded run of 2 peers (3 batches per round, real redis-servers, the real functions on ' +
      'worker threads behind an HTTP server) twice: every call passing, then a share of the calls ' +
      'failing behind a seeded proxy (gateway 500, reset, delay past the timeout, reset after the ' +
      'function ran). Median and mean steady round of each, their ratios, the faults injected, the calls ' +
      'copied, the answers read back from Redis, and both final checksums. The functions are elastic by ' +
      'default (an instance per call, as on Lambda, so a call slow to answer or failing fast gets another ' +
      'copy); --queued runs them on 2 queueing instances.',
  )
  .option('--json', 'print one JSON document on stdout instead of the table')
  .option('--fraction <x>', 'share of the calls that fail in the faulty run (default 0.2)', parseFloat)
  .addOption(new Option('--rounds <n>', 'rounds of each run (default 40: over fewer, one slow round moves the mean a lot)').argParser(int('--rounds')))
  .addOption(new Option('--timeout <ms>', 'a call\'s timeout at the platform (default 1000)').argParser(int('--timeout')))
  .addOption(new Option('--delay <ms>', 'how long a delay fault holds a call, past the timeout (default 1500)').argParser(int('--delay')))
  .addOption(new Option('--seed <n>', 'the proxy\'s seed: which calls fail (default 1)').argParser(int('--seed', 0)))
  .option('--queued', 'functions on a pool of 2 instances that queues calls, with no hedged copies (default: elastic)')
  .option('--kinds <list>', 'only these faults, comma-separated, from 500, reset, delay, reset-after (default: all, taking turns)')
  .addHelpText('after', '\nExamples:\n  peerless bench faults\n  peerless bench faults --queued\n  peerless bench faults --kinds delay --rounds 30\n  peerless bench faults --fraction 0.3 --rounds 20 --json > faults.json')
  .action(async (o) => { await (await import('./commands/bench-faults.ts')).benchFaults(o); });

bench
  .command('kills')
  .summary('the time the survivors lose when a peer, or its Redis, is killed at each phase of a round')
  .description(
    'Three `peerless peer` processes with their own redis-servers train a tiny synthetic CNN. The victim, ' +
      'the round\'s coordinator (p0, the lowest id) or another member (p2), stops before a phase once all three have trained together for a few rounds ' +
      '(by its own phase event, not a timer); then its process, or its redis-server, is SIGKILLed. From the ' +
      'survivors\' round log: the time lost around the kill, in ms and in deadlines (target: at most one), ' +
      'and whether the survivors end with one checksum. About half a minute per case; all 28 by default.',
  )
  .option('--json', 'print one JSON document on stdout instead of the table')
  .addOption(new Option('--deadline <ms>', 'the network\'s deadline (default 4000)').argParser(int('--deadline')))
  .option('--phases <list>', 'only these phases, comma-separated, from computing, averaging, exchanging, aggregating, updating, verifying, checking')
  .option('--victims <list>', 'coordinator, member or both (default both)')
  .option('--killed <list>', 'process, redis or both (default both)')
  .addHelpText('after', '\nExamples:\n  peerless bench kills\n  peerless bench kills --victims coordinator --killed process --phases aggregating,updating,verifying\n  peerless bench kills --deadline 2000 --json > kills.json')
  .action(async (o) => { await (await import('./commands/bench-kills.ts')).benchKills(o); });

addPlatformOptions(
  bench
    .command('serverless')
    .summary('Table 1: gradients with vs without serverless offload, time and cost')
    .description(
      'Table 1: one peer\'s shard (15,000 real MNIST images) at batch sizes 64, 128, 512, 1024: ' +
        'every gradient one after another in this process (without serverless) vs every batch a ' +
        'parallel invocation on the platform (with serverless); time, estimated cost, speedup; ' +
        'then the speedup as the concurrency grows from 1 to the number of workers.',
    )
    .addOption(new Option('--model <name>', 'model of the zoo').choices(['cnn', 'vgg11', 'resnet18', 'densenet121']).default('cnn'))
    .option('--width <x>', 'width multiplier of the model', parseFloat, 1)
    .addOption(new Option('--batch-sizes <list>', 'comma-separated batch sizes').argParser(intList('--batch-sizes')))
    .addOption(new Option('--samples <n>', 'images in the shard (default 15000, a quarter of MNIST)').argParser(int('--samples')))
    .option('--instance-usd-per-hour <x>', 'price of the one machine (default: r5.large on-demand, $0.126/h)', parseFloat)
    .option('--quick', 'a reduced run (3,000 images, batch sizes 64 and 512)')
    .option('--json', 'print one JSON document on stdout instead of the table'),
).action(async (o) => { await (await import('./commands/bench-serverless.ts')).benchServerless(o, await platformFrom(o)); });

addPlatformOptions(
  bench
    .command('scaling')
    .summary('Figure 2: round time vs batch size and peers; bytes for all vs sharded')
    .description(
      'Figure 2: time per round split into gradient computation and aggregation, for batch sizes ' +
        '64/128/512/1024 and 4/8/12 peers (the paper\'s mode: each peer\'s whole shard in one round), ' +
        'and the bytes each peer receives per round with exchange "all" vs "sharded".',
    )
    .addOption(new Option('--model <name>', 'model of the zoo').choices(['cnn', 'vgg11', 'resnet18', 'densenet121']).default('cnn'))
    .option('--width <x>', 'width multiplier of the model', parseFloat, 1)
    .addOption(new Option('--batch-sizes <list>', 'comma-separated batch sizes (default 64,128,512,1024; resnet18 64,128,512; densenet121 64,128, the largest that fits wasm\'s heap)').argParser(intList('--batch-sizes')))
    .addOption(new Option('--peer-counts <list>', 'comma-separated peer counts').argParser(intList('--peer-counts')))
    .addOption(new Option('--samples <n>', 'training images shared by the peers (default 12000 for cnn, 3072 vgg11, 1536 resnet18 and densenet121)').argParser(int('--samples')))
    .addOption(new Option('--rounds <n>', 'rounds per configuration (default 2 for cnn, 1 for the others)').argParser(int('--rounds')))
    .option('--quick', 'a reduced run (2,400 images, batch 256 and 1024, 4 and 12 peers, 1 round; resnet18 and densenet121: 768 images, batch 64)')
    .option('--json', 'print one JSON document on stdout instead of the table'),
).action(async (o) => { await (await import('./commands/bench-scaling.ts')).benchScaling(o, await platformFrom(o)); });

const fn = program.command('function').description('the serverless functions outside a training run');

fn.command('serve')
  .description('Host the gradient and evaluate functions over HTTP (POST /function/<name>), so one machine\'s functions can serve another\'s peers (--platform http --function-url ...).')
  .addOption(new Option('--port <n>', 'port to listen on').argParser(int('--port', 0)).default(8080))
  .option('--host <host>', 'address to bind (default 127.0.0.1; 0.0.0.0 to serve other machines)', '127.0.0.1')
  .option('--allow-redis <list>', 'comma-separated Redis servers the functions may connect to, host or host:port (default: loopback only)')
  .option('--tls-cert <file>', 'serve HTTPS with this PEM certificate (chain); needs --tls-key')
  .option('--tls-key <file>', 'the certificate\'s PEM private key')
  .addOption(logLevelOption())
  .addOption(logFormatOption())
  .addHelpText('after', '\nCallers must send Authorization: Bearer $PEERLESS_FUNCTION_TOKEN; set the variable here and where\nthe peers run (--platform http sends it). With --tls-cert and --tls-key it serves HTTPS; peers trust\nthe system\'s CAs and the one PEERLESS_TLS_CA names.\n\nExamples:\n  PEERLESS_FUNCTION_TOKEN=$(openssl rand -hex 16) peerless function serve --port 8080\n  peerless function serve --host 0.0.0.0 --allow-redis 10.0.0.1:6379,10.0.0.2:6379 --tls-cert fn.crt --tls-key fn.key')
  .action(async (o) => { await (await import('./commands/function.ts')).functionServe(o.port, o.host, o.allowRedis, o.tlsCert, o.tlsKey, await logOf(o)); });

fn.command('package')
  .description('Build what AWS Lambda deploys, with a SAM template.yaml and a Serverless Framework serverless.yml beside it, and print how to deploy it: a zip for Lambda\'s Node.js runtime (bundled handler and the wasm files), or with --backend native a container-image build context that builds oneDNN and the addon inside the Lambda Node.js 20 image. See docs/deploy.md for which to choose.')
  .option('--out <dir>', 'output directory', 'dist/lambda')
  .addOption(new Option('--backend <name>', 'wasm: a zip, runs anywhere Node.js 20 does; native: a container image, about 5x faster gradients').choices(['wasm', 'native']).default('wasm'))
  .addOption(new Option('--arch <arch>', 'the functions\' architecture in the templates (the wasm zip runs on both)').choices(['x86_64', 'arm64']).default('x86_64'))
  .addOption(new Option('--memory <mb>', 'each function\'s memory, MB').argParser(int('--memory', 128)).default(2048))
  .addOption(new Option('--timeout <s>', 'each function\'s timeout, seconds (Lambda allows up to 900)').argParser(int('--timeout', 1)).default(900))
  .option('--subnets <ids>', 'comma-separated subnet ids: run the functions in the VPC that reaches the peers\' Redis (with --security-groups)')
  .option('--security-groups <ids>', 'comma-separated security group ids for the functions in that VPC')
  .option('--json', 'print one JSON document on stdout')
  .addHelpText('after', '\nExamples:\n  peerless function package --out dist/lambda && (cd dist/lambda && sam deploy --guided --capabilities CAPABILITY_IAM)\n  peerless function package --arch arm64 --subnets subnet-1,subnet-2 --security-groups sg-1\n  peerless function package --backend native --out dist/lambda   # then docker build dist/lambda/peerless-native-image')
  .action(async (o) => {
    const list = (v?: string) => (v ? v.split(',').map((x) => x.trim()).filter(Boolean) : []);
    const vpc = o.subnets || o.securityGroups ? { subnetIds: list(o.subnets), securityGroupIds: list(o.securityGroups) } : undefined;
    await (await import('./commands/function.ts')).functionPackage(o.out, { backend: o.backend, arch: o.arch, memoryMb: o.memory, timeoutSec: o.timeout, vpc }, Boolean(o.json));
  });

/** A mistake in how Peerless was asked (flags, configuration): exit code 2, not 1. */
const USAGE = /^(invalid training configuration|--config |--[a-z-]+[: ])/;

program.parseAsync(process.argv).catch((err: Error) => {
  if (err instanceof CommanderError) {
    // Commander has already printed its message (or the help, or the version).
    process.exit(err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help' ? 0 : 2);
  }
  process.stderr.write(`peerless: ${err.message}\n`);
  process.exit(USAGE.test(err.message) ? 2 : 1);
});
