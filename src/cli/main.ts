import { Command, InvalidArgumentError, Option } from 'commander';
import { benchInDb } from './commands/bench-in-db.ts';

/** Parses a positive integer option, with the option's name in the error. */
export const int = (name: string, min = 1) => (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer >= ${min}, got "${v}"`);
  return n;
};
export const intList = (name: string) => (v: string): number[] => v.split(',').map((x) => int(name)(x.trim()));

const program = new Command('peerless')
  .description(
    'Peer-to-peer training of neural networks on serverless functions, with gradient averaging,\n' +
      'aggregation and optimizer steps inside each peer\'s Redis.',
  )
  .version('0.1.0')
  .showHelpAfterError('(run with --help for usage)');

const bench = program.command('bench').description('reproduce the original work\'s measurements, side by side in one run');

bench
  .command('in-db')
  .description(
    'Table 2: push and average N gradients, and run one SGD-momentum update, inside the database\n' +
      '(the peerless module) vs outside it (fetch into Node, compute, store back), on a\n' +
      'ResNet-18-sized vector (11,172,810 float32).',
  )
  .option('--quick', 'a reduced run (15 and 4 gradients) that takes well under a minute')
  .option('--json', 'print one JSON document on stdout instead of the table')
  .addOption(new Option('--params <n>', 'elements per tensor').argParser(int('--params')))
  .addOption(new Option('--gradients <list>', 'comma-separated gradient counts (default 235,118,30,15)').argParser(intList('--gradients')))
  .addOption(new Option('--repeats <n>', 'update repetitions (median reported)').argParser(int('--repeats')))
  .addHelpText('after', '\nExamples:\n  peerless bench in-db --quick\n  peerless bench in-db --json > in-db.json')
  .action(async (o) => { await benchInDb(o); });

program.parseAsync(process.argv).catch((err: Error) => {
  process.stderr.write(`peerless: ${err.message}\n`);
  process.exit(1);
});
