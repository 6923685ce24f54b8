import { BUFFER_REPLIES, type Redis } from './redis-client.ts';
import { chunks, copyInto, toBytes } from './bytes.ts';
import { AVERAGED_CHANNEL, type AccumulateResult, type AdamOptions, type AggregationRule, type SgdOptions, type TensorStore } from './tensor-store.ts';
import { aggregateInto, adamStep, checksum, sgdStep } from './reference.ts';
import { emptyExactSum, EXACT_LIMIT, exactAdd, exactMean, firstTooLarge } from './exact-sum.ts';

/**
 * The original work's baseline: every operation fetches the tensors into Node, computes
 * there and stores the result back with plain GETRANGE/SET. Same results as the in-DB
 * store (the maths is shared with the reference), same keys; what differs is where the
 * bytes go. Read-modify-write is serialised per key inside this process only: concurrent
 * writers in other processes would lose updates, one of the reasons to do it in the database.
 */
export class OutsideDbTensorStore implements TensorStore {
  readonly kind = 'outside-db';
  private readonly locks = new Map<string, Promise<unknown>>();

  constructor(private readonly client: Redis) {}

  private async withLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(key) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    this.locks.set(key, next.catch(() => {}));
    return next;
  }

  private async mustExist(key: string): Promise<number> {
    const bytes = Number(await this.client.strLen(key));
    if (bytes === 0) throw new Error(`missing tensor "${key}"`);
    if (bytes % 4 !== 0) throw new Error(`"${key}" has ${bytes} bytes, not a multiple of 4`);
    return bytes / 4;
  }

  async set(key: string, values: Float32Array): Promise<void> {
    checkFinite(values, key);
    await this.client.set(key, toBytes(values));
  }

  /** A whole string's bytes, read in chunks as the tensors are. */
  private async rawBytes(key: string): Promise<Buffer> {
    const bytes = Number(await this.client.strLen(key));
    const parts = await Promise.all(chunks(bytes / 4).map((c) => this.client.sendCommand(['GETRANGE', key, String(c.offset * 4), String((c.offset + c.count) * 4 - 1)], BUFFER_REPLIES) as Promise<Buffer>));
    return Buffer.concat(parts);
  }

  async get(key: string): Promise<Float32Array> {
    return this.getRange(key, 0, await this.mustExist(key));
  }

  async getRange(key: string, offset: number, count: number): Promise<Float32Array> {
    const length = await this.mustExist(key);
    if (offset < 0 || count < 0 || offset + count > length) throw new Error(`range [${offset}, ${offset + count}) outside "${key}" of ${length} elements`);
    const out = new Float32Array(count);
    await Promise.all(
      chunks(count).map(async (c) => {
        const start = (offset + c.offset) * 4;
        const bytes = (await this.client.sendCommand(['GETRANGE', key, String(start), String(start + c.count * 4 - 1)], BUFFER_REPLIES)) as Buffer;
        copyInto(out, c.offset, bytes);
      }),
    );
    return out;
  }

  async setRange(key: string, offset: number, values: Float32Array): Promise<void> {
    const length = await this.mustExist(key);
    if (offset < 0 || offset + values.length > length) throw new Error(`range [${offset}, ${offset + values.length}) outside "${key}" of ${length} elements`);
    checkFinite(values, key);
    await this.client.setRange(key, offset * 4, toBytes(values));
  }

  async zeros(key: string, length: number): Promise<void> {
    await this.client.set(key, Buffer.alloc(length * 4));
  }

  async length(key: string): Promise<number> {
    return this.mustExist(key);
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
    checkFinite(values, `gradient ${id}`);
    const big = firstTooLarge(values);
    if (big >= 0) throw new Error(`gradient ${id} has a value too large to sum exactly (${values[big]} at element ${big}; the limit is ${EXACT_LIMIT} in magnitude)`);
    return this.withLock(sumKey, async () => {
      const idsKey = `${sumKey}:ids`;
      if (round !== undefined) {
        // The module's rounds (see TensorStore.accumulate): reused keys, late rounds refused.
        const held = Number((await this.client.get(`${sumKey}:round`)) ?? -1);
        if (round < held) throw new Error(`contribution "${id}" is for round ${round}, but "${sumKey}" is summing round ${held}: too late, refused`);
        if (round > held) await this.client.multi().del(idsKey).del(sumKey).set(`${sumKey}:round`, String(round)).exec();
      }
      const seen = await this.client.hExists(idsKey, id);
      const count = Number(await this.client.hLen(idsKey));
      if (seen) return { count, expected, done: count >= expected };
      if (count >= expected) throw new Error(`accumulation "${sumKey}" is complete (${expected} of ${expected}); contribution "${id}" refused`);
      const total = slice?.total ?? values.length;
      const offset = slice?.offset ?? 0;
      // The module's exact sum, byte for byte: 16 bytes an element (src/tensor/exact-sum.ts).
      const stored = Number(await this.client.exists(sumKey)) === 1 ? await this.rawBytes(sumKey) : null;
      if (stored && stored.length !== total * 16) throw new Error(`gradient of ${total} elements, but the sum "${sumKey}" holds ${stored.length / 16}`);
      if (offset + values.length > total) throw new Error(`gradient slice [${offset}, ${offset + values.length}) does not fit TOTAL ${total}`);
      const sum = stored ? new Uint32Array(stored.buffer.slice(stored.byteOffset, stored.byteOffset + stored.length)) : emptyExactSum(total);
      exactAdd(sum, total, values, offset);
      const done = count + 1 === expected;
      const tx = this.client.multi().set(sumKey, Buffer.from(sum.buffer, sum.byteOffset, sum.byteLength)).hSet(idsKey, id, '1');
      if (done) tx.set(avgKey, toBytes(exactMean(sum, total, expected))).publish(AVERAGED_CHANNEL, avgKey);
      if (done && round !== undefined) tx.set(`${avgKey}:round`, String(round));
      await tx.exec();
      return { count: count + 1, expected, done };
    });
  }

  async sgd(paramKey: string, gradKey: string, velocityKey: string, o: SgdOptions): Promise<void> {
    await this.withLock(paramKey, async () => {
      const [param, grad] = await Promise.all([this.get(paramKey), this.get(gradKey)]);
      if (grad.length !== param.length) throw new Error(`gradient "${gradKey}" has ${grad.length} elements, parameters "${paramKey}" ${param.length}`);
      const hasVelocity = Number(await this.client.exists(velocityKey)) === 1;
      const velocity = hasVelocity ? await this.get(velocityKey) : new Float32Array(param.length);
      sgdStep(param, grad, velocity, !hasVelocity, o);
      await this.client.multi().set(paramKey, toBytes(param)).set(velocityKey, toBytes(velocity)).exec();
    });
  }

  async adam(paramKey: string, gradKey: string, mKey: string, vKey: string, stepKey: string, o: AdamOptions): Promise<number> {
    return this.withLock(paramKey, async () => {
      const [param, grad] = await Promise.all([this.get(paramKey), this.get(gradKey)]);
      if (grad.length !== param.length) throw new Error(`gradient "${gradKey}" has ${grad.length} elements, parameters "${paramKey}" ${param.length}`);
      const [hasM, hasV, stepRaw] = await Promise.all([this.client.exists(mKey), this.client.exists(vKey), this.client.get(stepKey)]);
      const m = Number(hasM) ? await this.get(mKey) : new Float32Array(param.length);
      const v = Number(hasV) ? await this.get(vKey) : new Float32Array(param.length);
      const step = Number(stepRaw ?? 0) + 1;
      adamStep(param, grad, m, v, step, o);
      await this.client.multi().set(paramKey, toBytes(param)).set(mKey, toBytes(m)).set(vKey, toBytes(v)).set(stepKey, String(step)).exec();
      return step;
    });
  }

  async aggregate(dst: string, keys: string[], rule: AggregationRule, _length?: number): Promise<void> {
    const sorted = sortKeys(keys);
    const inputs = await Promise.all(sorted.map((k) => this.get(k)));
    const out = new Float32Array(inputs[0]?.length ?? 0);
    aggregateInto(out, inputs, rule);
    await this.client.set(dst, toBytes(out));
  }

  async scale(key: string, factor: number): Promise<void> {
    await this.withLock(key, async () => {
      const t = await this.get(key);
      const f = Math.fround(factor);
      for (let i = 0; i < t.length; i++) t[i] = t[i] * f;
      await this.client.set(key, toBytes(t));
    });
  }

  async checksum(key: string): Promise<string> {
    return checksum(await this.get(key));
  }
}

/** The module's canonical order: byte-wise comparison of the key names. */
export function sortKeys(keys: string[]): string[] {
  if (new Set(keys).size !== keys.length) throw new Error('aggregate: duplicate key');
  return [...keys].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
}

function checkFinite(values: Float32Array, what: string): void {
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i])) throw new Error(`${what} has a non-finite value (${values[i]}) at element ${i}`);
  }
}
