import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseTrainingConfig, type TrainingConfig, type TrainingConfigInput } from '../config/training.ts';

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
  if (o.init !== undefined && o.model !== undefined) throw new Error('--init and --model both name the model: give one (--init DIR is --model DIR/model.json)');
  if (o.model !== undefined) model.name = o.model;
  if (o.init !== undefined) model.name = join(String(o.init), 'model.json');
  if (o.width !== undefined) model.width = o.width;
  c.model = model;
  set('dataset', o.dataset);
  set('labelColumn', o.labelColumn);
  set('task', o.task);
  set('testFraction', o.testFraction);
  set('resize', o.resize);
  set('batchSize', o.batchSize);
  set('batchesPerRound', o.batchesPerRound);
  set('epochs', o.epochs);
  set('maxRounds', o.rounds);
  set('targetAccuracy', o.targetAccuracy);
  set('patience', o.patience);
  set('checkEvery', o.checkEvery);
  set('validationSize', o.validation);
  set('exchange', o.exchange);
  set('transfer', o.transfer);
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
  try {
    return parseTrainingConfig(c);
  } catch (err) {
    // A config file's mistake is named with the file it is in.
    throw typeof o.config === 'string' ? new Error(`--config ${o.config}: ${(err as Error).message}`) : err;
  }
}
