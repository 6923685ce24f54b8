import { z } from 'zod';
import { parseResize, parseSource } from '../data/source-name.ts';
import { EXCHANGES } from './exchanges.ts';

const ZOO = ['cnn', 'vgg11', 'resnet18', 'densenet121', 'mlp'];

/**
 * The training configuration every peer of a network shares. The founding peer stores it in
 * its Redis; joiners read it from there, so a network never runs with two configurations.
 */
export const OptimizerSchema = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('sgd'),
    lr: z.number().positive().max(10),
    momentum: z.number().min(0).max(0.999).default(0.9),
    nesterov: z.boolean().default(false),
    weightDecay: z.number().min(0).max(1).default(0),
  }),
  z.strictObject({
    kind: z.literal('adam'),
    lr: z.number().positive().max(1),
    beta1: z.number().min(0).lt(1).default(0.9),
    beta2: z.number().min(0).lt(1).default(0.999),
    eps: z.number().positive().max(1).default(1e-8),
    weightDecay: z.number().min(0).max(1).default(0),
    decoupled: z.boolean().default(false),
  }),
]);

export const ScheduleSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('constant') }),
  z.strictObject({ kind: z.literal('step'), every: z.number().int().positive(), gamma: z.number().positive().max(1) }),
  z.strictObject({ kind: z.literal('cosine'), minFactor: z.number().min(0).max(1).default(0) }),
]);

export const AggregationSchema = z.discriminatedUnion('rule', [
  z.strictObject({ rule: z.literal('mean') }),
  z.strictObject({ rule: z.literal('median') }),
  z.strictObject({ rule: z.literal('trimmed'), trim: z.number().int().positive() }),
  z.strictObject({ rule: z.literal('krum'), byzantine: z.number().int().positive(), select: z.number().int().positive() }),
]);

// Strict objects: a key the schema does not know (a typo in a config file) is an error, not
// silently ignored.
export const TrainingConfigSchema = z
  .strictObject({
    model: z.strictObject({
      /** A preset of the zoo, or the path of a TF.js Layers model.json (src/model/custom.ts). */
      name: z.string().superRefine((n, ctx) => {
        if (!ZOO.includes(n) && !n.endsWith('.json')) ctx.addIssue({ code: 'custom', message: `"${n}" is neither a model of the zoo (${ZOO.join(', ')}) nor a model.json file` });
      }),
      width: z.number().positive().max(4).default(1),
    }),
    /** Where the samples come from: mnist, synthetic, or <format>:<path> (src/data/sources.ts). */
    dataset: z.string().default('mnist').superRefine((d, ctx) => {
      try { parseSource(d); } catch (err) { ctx.addIssue({ code: 'custom', message: (err as Error).message }); }
    }),
    /** CSV datasets: the column holding the class (or the regression target). */
    labelColumn: z.string().min(1).default('label'),
    /**
     * What the labels are (CSV and NPY): classes, values to predict with a mean-squared-error
     * loss, or auto (regression when the labels are numbers and not all integers).
     */
    task: z.enum(['auto', 'classification', 'regression']).default('auto'),
    /**
     * The share of all samples held out as the test set; 0 = the source's own test split, or
     * 20% for a source without one.
     */
    testFraction: z.number().min(0).max(0.9).default(0),
    /** Image folders: resize every image to WIDTHxHEIGHT. */
    resize: z.string().optional().superRefine((r, ctx) => {
      if (r === undefined) return;
      try { parseResize(r); } catch (err) { ctx.addIssue({ code: 'custom', message: (err as Error).message }); }
    }),
    /** Use only the first N training samples after the seeded shuffle (0 = all): quick runs and benchmarks. */
    trainSamples: z.number().int().min(0).max(10_000_000).default(0),
    /** Samples of the synthetic dataset (ignored for MNIST). */
    syntheticSize: z.number().int().min(64).max(1_000_000).default(4096),
    seed: z.number().int().min(0).max(2 ** 31 - 1).default(42),
    batchSize: z.number().int().min(1).max(8192).default(64),
    /** Batches each peer contributes to one round; 0 = the whole shard (the original work: one round per epoch). */
    batchesPerRound: z.number().int().min(0).max(100_000).default(0),
    /** Stop after this many epochs (passes over each shard) ... */
    epochs: z.number().positive().max(1_000_000).default(1),
    /** ... or this many rounds, whichever comes first (0 = no round limit). */
    maxRounds: z.number().int().min(0).max(10_000_000).default(0),
    optimizer: OptimizerSchema.default({ kind: 'adam', lr: 0.001, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, decoupled: false }),
    schedule: ScheduleSchema.default({ kind: 'constant' }),
    aggregation: AggregationSchema.default({ rule: 'mean' }),
    /**
     * The rule a round uses when too few peers' averages arrived for a robust rule (Multi-Krum
     * needs more than 2f+2, a trimmed mean more than 2k): 'none' fails the round instead.
     */
    fallbackAggregation: z.enum(['median', 'mean', 'none']).default('median'),
    /**
     * How peers exchange their averages: 'all' (each sends its whole average to every other,
     * the original work's), 'sharded' (reduce-scatter, then all-gather of the aggregate) or
     * 'sharded-step' (reduce-scatter, each slice's owner takes the optimizer step on it alone,
     * then all-gather of the parameters: ZeRO's first stage). All three give the same bytes.
     */
    exchange: z.enum(EXCHANGES).default('all'),
    /** Convergence check every N rounds (the original work: 10). */
    checkEvery: z.number().int().positive().max(100_000).default(10),
    /** Stop once validation accuracy reaches this (0-1; 1 = never early). */
    targetAccuracy: z.number().min(0).max(1).default(1),
    /** Stop after this many checks without a better validation accuracy (0 = never). */
    patience: z.number().int().min(0).max(10_000).default(0),
    /** Samples held out of the training set for convergence checks. */
    validationSize: z.number().int().min(0).max(20_000).default(2000),
    /** How long a peer waits for the others in a round before dropping them. */
    deadlineMs: z.number().int().min(100).max(3_600_000).default(60_000),
    /**
     * How long a peer retries failing gradient functions, from the start of the round's
     * compute; then the round goes on with the gradients that arrived. 0 = half the deadline,
     * so a peer that retried until then is still in time for the others.
     */
    functionDeadlineMs: z.number().int().min(0).max(3_600_000).default(0),
    /**
     * KiB per chunk of the transfer path (gradient pushes, exchange, all-gather): fewer round
     * trips when bigger, longer stalls for Redis's other clients. `peerless bench chunks` sweeps it.
     */
    chunkKib: z.number().int().min(4).max(65_536).default(1024),
    /**
     * How tensors travel from one peer's Redis to another's in the exchange: 'direct', the
     * module sends them itself (PL.SEND: one hop, the bytes never enter a peer process), or
     * 'relay', the peer reads and writes them. Over TLS (rediss://) they are relayed: the
     * module speaks plain TCP. The bytes that arrive are the same either way.
     */
    transfer: z.enum(['direct', 'relay']).default('direct'),
    /**
     * The compute backend every gradient function must use: results differ between backends
     * (they round differently), so the plan fixes it and every event carries it. 'auto' is
     * resolved to what the local platform's functions loaded when a run starts; on remote
     * platforms it leaves the choice to each function.
     */
    backend: z.enum(['auto', 'native', 'wasm', 'cpu']).default('auto'),
    /** Samples a single function processes at once (memory bound for big models); 0 = whole batch. */
    microBatch: z.number().int().min(0).max(8192).default(0),
    /**
     * Gradient checkpointing in the functions: one more forward pass for much less memory, the
     * same gradient bit for bit. 'auto' leaves it to the model (on for densenet121).
     */
    checkpoint: z.enum(['auto', 'on', 'off']).default('auto'),
  })
  .superRefine((c, ctx) => {
    if (c.exchange !== 'all' && c.aggregation.rule === 'krum') {
      ctx.addIssue({ code: 'custom', path: ['exchange'], message: 'sharded exchange needs a coordinate-wise aggregation rule (mean, median, trimmed); Multi-Krum needs whole vectors: use exchange "all"' });
    }
    if (c.aggregation.rule === 'krum' && c.aggregation.select < 1) {
      ctx.addIssue({ code: 'custom', path: ['aggregation', 'select'], message: 'select must be at least 1' });
    }
  });

export type TrainingConfig = z.infer<typeof TrainingConfigSchema>;
export type TrainingConfigInput = z.input<typeof TrainingConfigSchema>;
export type OptimizerConfig = z.infer<typeof OptimizerSchema>;

/** The round's function deadline, ms (see `functionDeadlineMs`). */
export function functionDeadline(c: TrainingConfig): number {
  return c.functionDeadlineMs > 0 ? c.functionDeadlineMs : Math.floor(c.deadlineMs / 2);
}

/** Every key the configuration knows, at any depth: the candidates of "did you mean". */
const KNOWN_KEYS = [
  ...Object.keys(TrainingConfigSchema.shape),
  'name', 'width', 'kind', 'lr', 'momentum', 'nesterov', 'weightDecay', 'beta1', 'beta2', 'eps', 'decoupled',
  'every', 'gamma', 'minFactor', 'rule', 'trim', 'byzantine', 'select',
];

/** Edit distance, for suggesting the key a typo meant. */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1]!.toLowerCase() === b[j - 1]!.toLowerCase() ? 0 : 1));
    }
  }
  return d[a.length]![b.length]!;
}

/** "unknown key "batchsize" (did you mean "batchSize"?)", or without a suggestion when none is close. */
export function unknownKey(key: string): string {
  const best = KNOWN_KEYS.map((k) => ({ k, d: distance(key, k.replace(/-/g, '')) })).sort((x, y) => x.d - y.d)[0];
  const hint = best && best.d <= Math.max(2, Math.floor(key.length / 3)) ? ` (did you mean "${best.k}"?)` : '';
  return `unknown key "${key}"${hint}`;
}

/** Validates a configuration; the error names every bad field on one line. */
export function parseTrainingConfig(input: unknown): TrainingConfig {
  const r = TrainingConfigSchema.safeParse(input);
  if (!r.success) {
    const issues = r.error.issues.flatMap((i) => {
      const at = i.path.join('.');
      if (i.code === 'unrecognized_keys') return i.keys.map((k) => `${at ? `${at}: ` : ''}${unknownKey(k)}`);
      return [`${at || 'config'}: ${i.message}`];
    });
    throw new Error(`invalid training configuration: ${issues.join('; ')}`);
  }
  return r.data;
}

/** The learning rate of round `round` out of `totalRounds`: the same on every peer. */
export function learningRate(c: TrainingConfig, round: number, totalRounds: number): number {
  const base = c.optimizer.lr;
  switch (c.schedule.kind) {
    case 'constant':
      return base;
    case 'step':
      return base * c.schedule.gamma ** Math.floor(round / c.schedule.every);
    case 'cosine': {
      const t = totalRounds > 0 ? Math.min(1, round / totalRounds) : 0;
      const min = c.schedule.minFactor;
      return base * (min + (1 - min) * 0.5 * (1 + Math.cos(Math.PI * t)));
    }
  }
}

/** Rounds in a whole run: epochs x rounds per epoch, capped by maxRounds. */
export function totalRounds(c: TrainingConfig, roundsPerEpoch: number): number {
  const byEpochs = Math.ceil(c.epochs * roundsPerEpoch);
  return c.maxRounds > 0 ? Math.min(byEpochs, c.maxRounds) : byEpochs;
}

/**
 * An explicit round count runs that many rounds. With the default of the whole shard per round
 * (`batchesPerRound` 0), a round takes max(1, floor(batches x epochs / rounds)) batches, and
 * epochs grow when that many rounds need more passes over the shard. `batchesPerRound` given
 * wins. Returns the config to run and a line saying what was chosen (null when nothing was).
 */
export function fitRounds(c: TrainingConfig, batches: number): { config: TrainingConfig; note: string | null } {
  if (c.maxRounds <= 0 || c.batchesPerRound > 0 || batches < 1) return { config: c, note: null };
  const per = Math.min(batches, Math.max(1, Math.floor((batches * c.epochs) / c.maxRounds)));
  const epochs = Math.max(c.epochs, Math.ceil(c.maxRounds / Math.ceil(batches / per)));
  return {
    config: { ...c, batchesPerRound: per, epochs },
    note: `${c.maxRounds} rounds: ${per} of the ${batches} batches in each peer's shard per round, ${epochs} epoch(s) (--batches-per-round sets it)`,
  };
}

/** Rounds per epoch for a shard of `batches` batches. */
export function roundsPerEpoch(c: TrainingConfig, batches: number): number {
  const per = c.batchesPerRound > 0 ? Math.min(c.batchesPerRound, batches) : batches;
  return Math.ceil(batches / per);
}
