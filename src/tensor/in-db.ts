import { BUFFER_REPLIES, type Redis } from './redis-client.ts';
import { chunks, fromBytes, toBytes } from './bytes.ts';
import type { AccumulateResult, AdamOptions, AggregationRule, SgdOptions, TensorStore } from './tensor-store.ts';

/** Numbers go to the module as strings; full precision so both stores see the same value. */
const num = (x: number): string => {
  if (!Number.isFinite(x)) throw new Error(`expected a finite number, got ${x}`);
  return String(x);
};

/**
 * The optimizer commands, built in one place for every caller (the store, the round's update
 * MULTI): every number checked finite here, the ranges by the module and the config.
 */
export function sgdCommand(paramKey: string, gradKey: string, velocityKey: string, o: SgdOptions): string[] {
  const args = ['PL.SGD', paramKey, gradKey, velocityKey, num(o.lr), num(o.momentum)];
  if (o.dampening) args.push('DAMPENING', num(o.dampening));
  if (o.weightDecay) args.push('WD', num(o.weightDecay));
  if (o.nesterov) args.push('NESTEROV');
  return args;
}

export function adamCommand(paramKey: string, gradKey: string, mKey: string, vKey: string, stepKey: string, o: AdamOptions): string[] {
  const args = ['PL.ADAM', paramKey, gradKey, mKey, vKey, stepKey, num(o.lr)];
  if (o.beta1 !== undefined) args.push('BETA1', num(o.beta1));
  if (o.beta2 !== undefined) args.push('BETA2', num(o.beta2));
  if (o.eps !== undefined) args.push('EPS', num(o.eps));
  if (o.weightDecay) args.push('WD', num(o.weightDecay));
  if (o.decoupled) args.push('DECOUPLED');
  return args;
}

/** Strips node-redis's wrapping so callers get the module's own one-line message. */
export async function call<T>(client: Redis, args: (string | Buffer)[], buffers = false): Promise<T> {
  try {
    return (await client.sendCommand(args, buffers ? BUFFER_REPLIES : undefined)) as T;
  } catch (err) {
    const msg = (err as Error).message.replace(/^ERR /, '');
    throw new Error(`${args[0]} ${typeof args[1] === 'string' ? args[1] : ''}: ${msg}`.replace(/\s+:/, ':'));
  }
}

/** What a Redis's accumulations did since it started (PL.STATS; native/COMMANDS.md). */
export interface AccumulationStats {
  /** Contributions counted, each once and whole. */
  counted: number;
  /** Sums that reached their expected count. */
  completed: number;
  /** A counted contribution, or a staged chunk, sent again: acknowledged and dropped. */
  repeats: number;
  /** Attempts taken back out of a sum because another attempt of theirs counted. */
  withdrawn: number;
  /** Contributions refused as too late (after PL.CLOSE, for an earlier round, from a replaced attempt). */
  late: number;
}

export async function accumulationStats(client: Redis): Promise<AccumulationStats> {
  const flat = await call<(string | number)[]>(client, ['PL.STATS']);
  const out: Record<string, number> = {};
  for (let i = 0; i < flat.length; i += 2) out[String(flat[i])] = Number(flat[i + 1]);
  return out as unknown as AccumulationStats;
}

/**
 * Elements [offset, offset+count) of a tensor as raw little-endian bytes, read with
 * PL.GETRANGE in ~4 MB ranges so one large reply never stalls Redis for other clients.
 * For moving tensors between Redis servers without converting them.
 */
export async function readTensorBytes(client: Redis, key: string, offset: number, count: number): Promise<Buffer> {
  const parts = await Promise.all(
    chunks(count).map((c) => call<Buffer>(client, ['PL.GETRANGE', key, String(offset + c.offset), String(c.count)], true)),
  );
  return parts.length === 1 ? parts[0] : Buffer.concat(parts);
}

/**
 * Resolves once the average `avgKey` of round `round` is whole. The module writes a long
 * average in pieces after the push that completes its sum and sets "<avg>:round" with the
 * last piece, so an average read before that has a tail of zeros. `timeoutMs` bounds a hang.
 */
export async function averageWritten(client: Redis, avgKey: string, round: number, timeoutMs = Infinity): Promise<void> {
  const until = performance.now() + timeoutMs;
  while ((await client.get(`${avgKey}:round`)) !== String(round)) {
    if (performance.now() > until) throw new Error(`the average "${avgKey}" of round ${round} was not written within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 1));
  }
}

/**
 * The tensor operations done inside Redis by the peerless module: only key names and
 * scalars cross the wire, except for the tensors a caller sends or asks for.
 */
/**
 * Elements per PL.AGGREGATE piece: a mean of four 1 Mi-element inputs takes a few ms, where
 * ResNet-18's whole vector in one command stalled its Redis for ~70 ms (bench round).
 */
export const AGGREGATE_PIECE = 1 << 20;

/** PL.AGGREGATE's rule words for a rule. */
function aggregateRuleArgs(rule: AggregationRule): string[] {
  return rule.rule === 'mean' ? ['MEAN']
    : rule.rule === 'median' ? ['MEDIAN']
    : rule.rule === 'trimmed' ? ['TRIMMED', String(rule.trim)]
    : ['KRUM', String(rule.byzantine), String(rule.select)];
}

/**
 * Elements per PL.CHECKSUM piece, a multiple of the checksum's 4096-word blocks (pieces chain
 * only at those): ~0.25 ns a word here, so each piece holds its Redis well under a ms.
 */
export const CHECKSUM_PIECE = 1 << 21;

export class InDbTensorStore implements TensorStore {
  readonly kind = 'in-db';
  constructor(private readonly client: Redis) {}

  async set(key: string, values: Float32Array): Promise<void> {
    await call(this.client, ['PL.SET', key, toBytes(values)]);
  }

  /** Reads in ~4 MB ranges: one 47 MB reply would stall other clients for tens of ms. */
  async get(key: string): Promise<Float32Array> {
    return this.getRange(key, 0, await this.length(key));
  }

  async getRange(key: string, offset: number, count: number): Promise<Float32Array> {
    return fromBytes(await readTensorBytes(this.client, key, offset, count), key);
  }

  async setRange(key: string, offset: number, values: Float32Array): Promise<void> {
    await call(this.client, ['PL.SETRANGE', key, String(offset), toBytes(values)]);
  }

  async zeros(key: string, length: number): Promise<void> {
    await call(this.client, ['PL.ZEROS', key, String(length)]);
  }

  async length(key: string): Promise<number> {
    return Number(await call<number>(this.client, ['PL.LEN', key]));
  }

  async accumulate(
    sumKey: string,
    avgKey: string,
    id: string,
    expected: number,
    values: Float32Array,
    slice?: { offset: number; total: number },
    round?: number,
  ): Promise<AccumulateResult> {
    const args: (string | Buffer)[] = ['PL.ACCUM', sumKey, avgKey, id, String(expected), toBytes(values)];
    if (slice) args.push('OFFSET', String(slice.offset), 'TOTAL', String(slice.total));
    if (round !== undefined) args.push('ROUND', String(round));
    const [count, exp, done] = await call<number[]>(this.client, args);
    return { count: Number(count), expected: Number(exp), done: Number(done) === 1 };
  }

  /**
   * Closes an accumulation at the function deadline: the average over what arrived, and no
   * contribution counted after (PL.CLOSE). Fails when nothing arrived.
   */
  async closeAccumulation(sumKey: string, avgKey: string, round?: number): Promise<AccumulateResult> {
    const args = ['PL.CLOSE', sumKey, avgKey];
    if (round !== undefined) args.push('ROUND', String(round));
    const [count, exp, done] = await call<number[]>(this.client, args);
    return { count: Number(count), expected: Number(exp), done: Number(done) === 1 };
  }

  /**
   * What the writer of contribution `id` sent with it (PL.PUSH RESULT), when `id` counted in
   * round `round` of the sum; null when it has not counted (yet), or counted without one. Read
   * in one transaction with the sum's round, so an id of an earlier round is never taken for
   * this one's.
   */
  async landedResult(sumKey: string, id: string, round: number): Promise<string | null> {
    const [r, v] = (await this.client.multi().get(`${sumKey}:round`).hGet(`${sumKey}:ids`, id).exec()) as unknown[];
    return r === String(round) && typeof v === 'string' ? v : null;
  }

  async sgd(paramKey: string, gradKey: string, velocityKey: string, o: SgdOptions): Promise<void> {
    await call(this.client, sgdCommand(paramKey, gradKey, velocityKey, o));
  }

  async adam(paramKey: string, gradKey: string, mKey: string, vKey: string, stepKey: string, o: AdamOptions): Promise<number> {
    return Number(await call<number>(this.client, adamCommand(paramKey, gradKey, mKey, vKey, stepKey, o)));
  }

  async aggregate(dst: string, keys: string[], rule: AggregationRule, length?: number): Promise<void> {
    const ruleArgs = aggregateRuleArgs(rule);
    const inputs = [String(keys.length), ...keys];
    if (length === undefined || length <= AGGREGATE_PIECE || rule.rule === 'krum') {
      await call(this.client, ['PL.AGGREGATE', dst, ...ruleArgs, ...inputs]);
      return;
    }
    // In pieces, one after another (not pipelined: Redis runs a client's pipeline back to
    // back), so the server's other clients are served between them.
    if (Number(await this.client.strLen(dst)) !== length * 4) await this.zeros(dst, length);
    for (const c of chunks(length, AGGREGATE_PIECE)) {
      await call(this.client, ['PL.AGGREGATE', dst, 'RANGE', String(c.offset), String(c.count), ...ruleArgs, ...inputs]);
    }
  }

  /**
   * Aggregates `count` elements of each input, each read from its own offset, into
   * `[dstOffset, dstOffset + count)` of `dst`, which must hold that range (PL.AGGREGATE ...
   * OFFSETS), in pieces as above. Coordinate-wise rules only: Krum needs whole vectors.
   */
  async aggregateRange(dst: string, dstOffset: number, inputs: { key: string; offset: number }[], rule: AggregationRule, count: number): Promise<void> {
    if (rule.rule === 'krum') throw new Error('Multi-Krum needs whole vectors: it cannot aggregate a range');
    const ruleArgs = aggregateRuleArgs(rule);
    for (const c of chunks(count, AGGREGATE_PIECE)) {
      await call(this.client, ['PL.AGGREGATE', dst, 'RANGE', String(dstOffset + c.offset), String(c.count), ...ruleArgs,
        String(inputs.length), ...inputs.map((i) => i.key), 'OFFSETS', ...inputs.map((i) => String(i.offset + c.offset))]);
    }
  }

  async scale(key: string, factor: number): Promise<void> {
    await call(this.client, ['PL.SCALE', key, num(factor)]);
  }

  /** PL.CHECKSUM, in chained pieces for a long tensor (the same answer, no long stall). */
  async checksum(key: string): Promise<string> {
    const n = await this.length(key);
    if (n <= CHECKSUM_PIECE) return String(await call<string>(this.client, ['PL.CHECKSUM', key]));
    let state: string | undefined;
    for (const c of chunks(n, CHECKSUM_PIECE)) {
      state = String(await call<string>(this.client, ['PL.CHECKSUM', key, 'RANGE', String(c.offset), String(c.count), ...(state ? ['FROM', state] : [])]));
    }
    return state!;
  }
}

