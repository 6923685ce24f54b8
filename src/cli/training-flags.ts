import { Command, Option } from 'commander';
import { EXCHANGES } from '../config/exchanges.ts';

/**
 * The configuration's defaults as --help shows them, written out so that `train --help`
 * answers without loading the schema (zod, ~100 ms). training-flags.spec checks every one
 * against the schema's own defaults, so they cannot drift apart.
 */
export const FLAG_DEFAULTS = {
  model: { name: 'cnn', width: 1 }, dataset: 'mnist', labelColumn: 'label', task: 'auto', seed: 42, batchSize: 64,
  batchesPerRound: 0, epochs: 1, maxRounds: 0, optimizer: { kind: 'adam', weightDecay: 0 }, schedule: { kind: 'constant' },
  aggregation: { rule: 'mean' }, fallbackAggregation: 'median', exchange: 'all', checkEvery: 10, targetAccuracy: 1, patience: 0,
  validationSize: 2000, deadlineMs: 60_000, functionDeadlineMs: 0, chunkKib: 1024, transfer: 'direct', backend: 'auto', checkpoint: 'auto',
} as const;
/** SGD's default momentum (with --optimizer sgd). */
export const SGD_MOMENTUM_DEFAULT = 0.9;
const D = FLAG_DEFAULTS;
const dflt = (v: unknown) => ` (default: ${String(v)})`;

/** Adds the training options shared by `train` and `peer` (flags override a --config file). */
export function addTrainingOptions(cmd: Command): Command {
  return cmd
    .option('--config <file>', 'training configuration as JSON (flags given on the command line override it)')
    .option('--model <name>', `a model of the zoo (cnn, vgg11, resnet18, densenet121, mlp), or your TF.js Layers model.json (with or without weights)${dflt(D.model.name)}`)
    .option('--init <dir>', 'start from a saved model (train --save, peerless export): its layout and weights; the same as --model DIR/model.json')
    .option('--width <x>', `width multiplier of a zoo model: channels scale by it${dflt(D.model.width)}`, parseFloat)
    .option('--dataset <source>', `training data: mnist, synthetic, or your own as idx:DIR, cifar10:DIR, npy:DIR (x.npy, y.npy), csv:FILE, images:DIR (a subfolder per class)${dflt(D.dataset)}`)
    .option('--label-column <name>', `CSV: the column holding the class, or the value to predict${dflt(D.labelColumn)}`)
    .addOption(new Option('--task <kind>', `CSV and NPY labels: classes, or values to predict (mean squared error); auto = regression when the labels are numbers not all integers${dflt(D.task)}`).choices(['auto', 'classification', 'regression']))
    .option('--test-fraction <x>', 'share of the samples held out as the test set (default: the source\'s own test split, else 0.2)', parseFloat)
    .option('--resize <WxH>', 'image folders: resize every image, e.g. 32x32 (default: all images must have the same size)')
    .option('--batch-size <n>', `samples per batch, one function invocation per batch${dflt(D.batchSize)}`, parseFloat)
    .option('--batches-per-round <n>', `batches each peer contributes to a round; 0 = its whole shard, one round per epoch as in the original work, unless --rounds sets it${dflt(D.batchesPerRound)}`, parseFloat)
    .option('--epochs <n>', `passes over each shard; grown when --rounds needs more${dflt(D.epochs)}`, parseFloat)
    .option('--rounds <n>', `run this many rounds; 0 = as many as the epochs take${dflt(D.maxRounds)}`, parseFloat)
    .addOption(new Option('--optimizer <kind>', `optimizer step run inside the database${dflt(D.optimizer.kind)}`).choices(['sgd', 'adam']))
    .option('--lr <x>', 'learning rate (default: 0.001 with adam, 0.05 with sgd)', parseFloat)
    .option('--momentum <x>', `SGD momentum, 0 to 0.999${dflt(SGD_MOMENTUM_DEFAULT)}`, parseFloat)
    .option('--weight-decay <x>', `weight decay, AdamW with --optimizer adam${dflt(D.optimizer.weightDecay)}`, parseFloat)
    .addOption(new Option('--schedule <kind>', `learning-rate schedule${dflt(D.schedule.kind)}`).choices(['constant', 'step', 'cosine']))
    .option('--target-accuracy <x>', `stop when validation accuracy reaches this, 0 to 1${dflt(D.targetAccuracy)}`, parseFloat)
    .option('--patience <n>', `stop after this many checks without improvement; 0 = never${dflt(D.patience)}`, parseFloat)
    .option('--check-every <n>', `rounds between convergence checks${dflt(D.checkEvery)}`, parseFloat)
    .option('--validation <n>', `training samples held out for the convergence checks${dflt(D.validationSize)}`, parseFloat)
    .addOption(new Option('--exchange <mode>', `how peers exchange averages: all (the original work's), sharded (reduce-scatter + all-gather) or sharded-step (the same, with each slice's optimizer step taken by its owner alone: ZeRO-1)${dflt(D.exchange)}`).choices(EXCHANGES))
    .option('--aggregation <rule>', `cross-peer aggregation: mean | median | trimmed:K | krum:F:M${dflt(D.aggregation.rule)}`)
    .addOption(new Option('--fallback-aggregation <rule>', `used in a round where too few averages arrived for a robust --aggregation; none = fail the round${dflt(D.fallbackAggregation)}`).choices(['median', 'mean', 'none']))
    .option('--seed <n>', `seed of the initial weights and of the data split${dflt(D.seed)}`, parseFloat)
    .option('--deadline <ms>', `milliseconds a peer waits for the others before dropping them${dflt(D.deadlineMs)}`, parseFloat)
    .option('--function-deadline <ms>', `milliseconds failing gradient functions are retried in a round before it goes on with the gradients that arrived; 0 = half the deadline${dflt(D.functionDeadlineMs)}`, parseFloat)
    .option('--chunk-kib <n>', `KiB per chunk when tensors move between Redis servers (see bench chunks)${dflt(D.chunkKib)}`, parseFloat)
    .addOption(new Option('--transfer <how>', `how averages travel between peers' Redis servers: direct (the module sends them, one hop) or relay (through the peer process; always over TLS)${dflt(D.transfer)}`).choices(['direct', 'relay']))
    .addOption(new Option('--checkpoint <mode>', `gradient checkpointing in the functions: one more forward pass, much less memory, the same gradient; auto = on for densenet121${dflt(D.checkpoint)}`).choices(['auto', 'on', 'off']))
    .option('--backend <name>', `compute backend every gradient function must use: native, wasm, cpu, or auto (what the local functions loaded)${dflt(D.backend)}`);
}

/** How rounds, epochs and batches per round fit together, for `train --help` and `peer --help`. */
export const ROUNDS_HELP = [
  '',
  'Rounds: in a round every peer computes --batches-per-round gradients (one function each), then the',
  'peers average, exchange, aggregate and update. --rounds N runs N rounds, each taking',
  'max(1, batches in the shard x --epochs / N) batches unless --batches-per-round is given.',
].join('\n');
