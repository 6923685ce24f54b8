import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { parseTrainingConfig, type TrainingConfig, type TrainingConfigInput } from '../config/training.ts';

/** Adds the training options shared by `train` and `peer` (flags override a --config file). */
export function addTrainingOptions(cmd: Command): Command {
  return cmd
    .option('--config <file>', 'training configuration as JSON (flags given on the command line override it)')
    .addOption(new Option('--model <name>', 'model of the zoo').choices(['cnn', 'vgg11', 'resnet18', 'densenet121']))
    .option('--width <x>', 'width multiplier of the model (channels scale by it)', parseFloat)
    .addOption(new Option('--dataset <name>', 'training data').choices(['mnist', 'synthetic']))
    .option('--batch-size <n>', 'samples per batch (one function invocation per batch)', parseFloat)
    .option('--batches-per-round <n>', 'batches each peer contributes to a round; 0 = its whole shard (one round per epoch, as in the original work)', parseFloat)
    .option('--epochs <n>', 'passes over each shard', parseFloat)
    .option('--rounds <n>', 'stop after this many rounds (0 = no limit)', parseFloat)
    .addOption(new Option('--optimizer <kind>', 'optimizer step run inside the database').choices(['sgd', 'adam']))
    .option('--lr <x>', 'learning rate', parseFloat)
    .option('--momentum <x>', 'SGD momentum', parseFloat)
    .option('--weight-decay <x>', 'weight decay (AdamW with --optimizer adam)', parseFloat)
    .addOption(new Option('--schedule <kind>', 'learning-rate schedule').choices(['constant', 'step', 'cosine']))
    .option('--target-accuracy <x>', 'stop when validation accuracy reaches this (0-1)', parseFloat)
    .option('--patience <n>', 'stop after this many checks without improvement (0 = never)', parseFloat)
    .option('--check-every <n>', 'rounds between convergence checks', parseFloat)
    .option('--validation <n>', 'training samples held out for the convergence checks', parseFloat)
    .addOption(new Option('--exchange <mode>', 'how peers exchange averages').choices(['all', 'sharded']))
    .option('--aggregation <rule>', 'cross-peer aggregation: mean | median | trimmed:K | krum:F:M')
    .addOption(new Option('--fallback-aggregation <rule>', 'used in a round where too few averages arrived for a robust --aggregation (none = fail the round)').choices(['median', 'mean', 'none']))
    .option('--seed <n>', 'seed of the initial weights and of the data split', parseFloat)
    .option('--deadline <ms>', 'how long a peer waits for the others before dropping them', parseFloat)
    .option('--function-deadline <ms>', 'how long failing gradient functions are retried in a round before it goes on with the gradients that arrived (0 = half the deadline)', parseFloat)
    .option('--chunk-kib <n>', 'KiB per chunk when tensors move between Redis servers (default 1024; see bench chunks)', parseFloat)
    .addOption(new Option('--checkpoint <mode>', 'gradient checkpointing in the functions: one more forward pass, much less memory, the same gradient (auto = on for densenet121)').choices(['auto', 'on', 'off']))
    .option('--backend <name>', 'compute backend every gradient function must use: native, wasm, cpu, or auto (what the local functions loaded)');
}

function aggregation(v: string): TrainingConfigInput['aggregation'] {
  const [rule, a, b] = v.split(':');
  if (rule === 'mean' || rule === 'median') return { rule };
  if (rule === 'trimmed') return { rule, trim: Number(a) };
  if (rule === 'krum') return { rule, byzantine: Number(a), select: Number(b) };
  throw new Error(`--aggregation: unknown rule "${v}": expected mean, median, trimmed:K or krum:F:M`);
}

/** Builds and validates the configuration from a file and flags; errors name the field. */
export function trainingConfigFrom(o: Record<string, unknown>, defaults: Partial<TrainingConfigInput> = {}): TrainingConfig {
  let fromFile: Record<string, unknown> = {};
  if (typeof o.config === 'string') {
    try {
      fromFile = JSON.parse(readFileSync(o.config, 'utf8'));
    } catch (err) {
      throw new Error(`--config ${o.config}: ${(err as Error).message}`);
    }
  }
  const c: Record<string, unknown> = { ...defaults, ...fromFile };
  const set = (k: string, v: unknown) => { if (v !== undefined) c[k] = v; };
  const model = { ...((c.model as object) ?? { name: 'cnn' }) } as Record<string, unknown>;
  if (o.model !== undefined) model.name = o.model;
  if (o.width !== undefined) model.width = o.width;
  c.model = model;
  set('dataset', o.dataset);
  set('batchSize', o.batchSize);
  set('batchesPerRound', o.batchesPerRound);
  set('epochs', o.epochs);
  set('maxRounds', o.rounds);
  set('targetAccuracy', o.targetAccuracy);
  set('patience', o.patience);
  set('checkEvery', o.checkEvery);
  set('validationSize', o.validation);
  set('exchange', o.exchange);
  set('fallbackAggregation', o.fallbackAggregation);
  set('seed', o.seed);
  set('deadlineMs', o.deadline);
  set('functionDeadlineMs', o.functionDeadline);
  set('chunkKib', o.chunkKib);
  set('backend', o.backend);
  set('checkpoint', o.checkpoint);
  if (o.aggregation !== undefined) c.aggregation = aggregation(String(o.aggregation));
  if (o.schedule !== undefined) c.schedule = o.schedule === 'step' ? { kind: 'step', every: 50, gamma: 0.5 } : { kind: o.schedule };
  const opt = { ...((c.optimizer as object) ?? {}) } as Record<string, unknown>;
  if (o.optimizer !== undefined && o.optimizer !== opt.kind) {
    for (const k of Object.keys(opt)) delete opt[k];
    opt.kind = o.optimizer;
  }
  opt.kind ??= 'adam';
  if (o.lr !== undefined) opt.lr = o.lr;
  opt.lr ??= opt.kind === 'adam' ? 0.001 : 0.05;
  if (o.momentum !== undefined) opt.momentum = o.momentum;
  if (o.weightDecay !== undefined) {
    opt.weightDecay = o.weightDecay;
    if (opt.kind === 'adam') opt.decoupled = true;
  }
  c.optimizer = opt;
  return parseTrainingConfig(c);
}
