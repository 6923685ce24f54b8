import { functionDeadline, learningRate, totalRounds } from '../config/training.ts';
import type { EvaluateResult, GradientEvent, GradientResult, RedisLocation } from '../functions/events.ts';
import type { FunctionPlatform } from '../platform/platform.ts';
import { mayPassLater, RetriesExhausted, withRetries, withTimeout } from '../platform/retry.ts';
import { adamCommand, sgdCommand, type InDbTensorStore } from '../tensor/in-db.ts';
import type { Redis } from '../tensor/redis-client.ts';
import { ensureTensor } from '../tensor/transfer.ts';
import { forwardJoinRequests } from './net/admission.ts';
import { agree, DroppedError } from './net/agreement.ts';
import { exchangeAll, exchangeSharded, sliceRanges, type ExchangeInput, type SendResult } from './exchange.ts';
import type { Inbox } from './net/inbox.ts';
import { K } from './net/keys.ts';
import type { PeerLinks } from './net/links.ts';
import type { Membership, MemberRecord } from './net/membership.ts';
import { gradientEvent } from './events.ts';
import type { NetworkPlan } from './plan.ts';
import type { RoundWork } from './round-machine.ts';
import { copyTrainingState } from './net/state-copy.ts';
import type { ModelInfo, PeerData, RoundMetrics } from './types.ts';

export interface RoundDeps {
  id: string;
  plan: NetworkPlan;
  local: Redis;
  store: InDbTensorStore;
  inbox: Inbox;
  links: PeerLinks;
  membership: Membership;
  platform: FunctionPlatform;
  data: PeerData;
  model: ModelInfo;
  /** The peer's Redis as functions reach it. */
  redis: RedisLocation;
  emitRound(m: RoundMetrics): void;
  log(msg: string): void;
  /** Whether this peer was asked to leave (it says so in its next round report). */
  leaving(): boolean;
  /** The identity this peer's Redis must hold (K.identity); anything else means lost state. */
  identity: string;
}

/** Samples one `evaluate` invocation handles. */
const EVAL_CHUNK = 1000;

interface Progress {
  best: number;
  checksSinceBest: number;
}

/** Milliseconds since the epoch, sub-millisecond: comparable between peers on one machine. */
const wallClock = () => performance.timeOrigin + performance.now();

/**
 * The work of each phase of a round, for one peer. The round state machine calls these in
 * order; each is safe to run again after a restart (see RoundWork).
 */
export class RoundRunner implements RoundWork {
  inFlightCount = 0;
  lastLoss: number | null = null;
  lastValidationAccuracy: number | null = null;
  private members: MemberRecord[] = [];
  /** Members that missed this round's exchange deadline: not waited for again this round. */
  private suspects = new Set<string>();
  /** Set when this peer's leave took effect (it is not in the next round's view). */
  private leftNetwork = false;
  private sent?: SendResult;
  private metrics!: RoundMetrics;
  private roundStart = 0;
  /** Last round to run, when `peerless stop` asked the network to stop. */
  private stopAt: number | null = null;

  constructor(private readonly d: RoundDeps) {}

  private get config() {
    return this.d.plan.config;
  }

  get totalRounds(): number {
    return totalRounds(this.config, this.d.plan.roundsPerEpoch);
  }

  private input(round: number): ExchangeInput {
    return {
      round,
      me: this.members.find((m) => m.id === this.d.id)!,
      members: this.members,
      averageKey: K.gradAvg(round),
      length: this.d.model.length,
      rule: this.config.aggregation,
      fallback: this.config.fallbackAggregation,
      log: this.d.log,
      deadlineMs: this.config.deadlineMs,
      transfer: { chunkElements: this.config.chunkKib * 256 },
      local: this.d.local,
      store: this.d.store,
      links: this.d.links,
      inbox: this.d.inbox,
    };
  }

  async prepare(round: number): Promise<void> {
    this.roundStart = performance.now();
    this.suspects = new Set();
    const [identity, stopAt] = await Promise.all([this.d.local.get(K.identity), this.d.local.get(K.stopAt)]);
    if (identity !== this.d.identity) throw new LostStateError(this.d.id, this.d.redis.url);
    this.stopAt = stopAt === null ? null : Number(stopAt);
    this.members = await this.d.membership.activeAt(round);
    if (!this.members.some((m) => m.id === this.d.id)) {
      throw new DroppedError(this.d.id, round, 'it is not among the members of the round');
    }
    // Join requests belong with the coordinator, which admits joiners at the end of a round.
    const coordinator = this.members[0];
    if (coordinator.id !== this.d.id && Number(await this.d.local.lLen(K.joinRequests)) > 0) {
      await this.d.links.client(coordinator.url).then((c) => forwardJoinRequests(this.d.local, c)).catch((err: Error) => {
        this.d.log(`round ${round}: could not forward join requests to ${coordinator.id}: ${err.message}`);
      });
    }
    await this.collectGarbage(round - 2);
    // The exchange's buffers are recycled: this allocates only on the first rounds.
    if (this.config.exchange === 'sharded') await ensureTensor(this.d.local, K.aggregate(round), this.d.model.length);
    this.metrics = {
      peer: this.d.id, round, epoch: Math.floor(round / this.d.plan.roundsPerEpoch), members: this.members.map((m) => m.id),
      loss: NaN, accuracy: NaN, samples: 0, lr: learningRate(this.config, round, this.totalRounds),
      computeMs: 0, averageMs: 0, exchangeMs: 0, aggregateMs: 0, updateMs: 0, verifyMs: 0, checkMs: 0,
      functionComputeMs: 0, functionWallMs: 0, roundMs: 0, averagedAt: 0, updatedAt: 0, bytesSent: 0, bytesReceived: 0, waitMs: 0,
      dropped: [], failedBatches: 0, repaired: false, checksum: '', costUsd: this.d.platform.metrics().estimatedCostUsd,
    };
  }

  /** Removes an old round's keys: two rounds back nobody can still need them. */
  private async collectGarbage(round: number): Promise<void> {
    if (round < 0) return;
    let cursor = '0';
    do {
      const r = await this.d.local.scan(cursor, { MATCH: K.roundPattern(round), COUNT: 1000 });
      cursor = String(r.cursor);
      if (r.keys.length > 0) await this.d.local.unlink(r.keys);
    } while (cursor !== '0');
  }

  /** The batches of `round`: a window of the shard that wraps around at the epoch's end. */
  batchesOf(round: number): number[] {
    const n = this.d.data.batches;
    const per = this.config.batchesPerRound > 0 ? Math.min(this.config.batchesPerRound, n) : n;
    return Array.from({ length: per }, (_, i) => (round * per + i) % n);
  }

  /**
   * One gradient function per batch, all at once. A failing call is retried with backoff
   * until the round's function deadline (the gradient counts once per batch, whatever the
   * attempts); a batch that still fails is reported, and the average is then closed inside
   * the database over the gradients that arrived. A peer none of whose gradients arrived
   * sits the round out: it is dropped, and asks to rejoin.
   */
  async compute(round: number): Promise<void> {
    const t = performance.now();
    const batches = this.batchesOf(round);
    const until = t + functionDeadline(this.config);
    const outcomes = await Promise.all(batches.map((b) => this.gradientUntil(round, b, batches.length, until)));
    let samples = 0, lossSum = 0, correct = 0, fnMs = 0;
    const failed: { batch: number; error: Error }[] = [];
    for (const [i, o] of outcomes.entries()) {
      if ('error' in o) { failed.push({ batch: batches[i], error: o.error }); continue; }
      const r = o.result;
      samples += r.samples;
      lossSum += r.loss * r.samples;
      correct += r.accuracy * r.samples;
      fnMs += r.timings.computeMs;
    }
    if (failed.length > 0) await this.closeAverage(round, batches.length, failed);
    Object.assign(this.metrics, {
      samples, loss: samples > 0 ? lossSum / samples : NaN, accuracy: samples > 0 ? correct / samples : NaN, functionComputeMs: fnMs,
      functionWallMs: performance.now() - t, computeMs: performance.now() - t, failedBatches: failed.length,
    });
    if (samples > 0) this.lastLoss = this.metrics.loss;
  }

  /** Invokes one batch's gradient, retrying what may pass later, until `until`. */
  private async gradientUntil(round: number, batch: number, expected: number, until: number): Promise<{ result: GradientResult } | { error: Error }> {
    const event = this.gradientEvent(round, batch, expected);
    // A call still running at the deadline may yet land; the closed average refuses it then.
    const late = () => Object.assign(new Error('no answer before the function deadline'), { retryable: false, late: true });
    // The cause worth reporting: a last call cut by the deadline says less than the failure before it.
    let cause: Error | undefined;
    const call = () => withTimeout(this.d.platform.invoke('gradient', event), until - performance.now(), late)
      .catch((err: Error) => { if (!(err as { late?: boolean }).late) cause = err; throw err; });
    this.inFlightCount++;
    try {
      const out = await withRetries(call, mayPassLater, { attempts: Number.POSITIVE_INFINITY, baseDelayMs: 100, maxDelayMs: 2_000, until });
      return { result: out.value };
    } catch (err) {
      const e = err as RetriesExhausted;
      const cutShort = (e.cause as { late?: boolean }).late === true && cause !== undefined;
      const error = cutShort ? cause! : e.cause;
      if (e.attempts > 1) error.message += ` (${e.attempts} calls in this round${cutShort ? ', the last cut short by the deadline' : ''})`;
      return { error };
    } finally {
      this.inFlightCount--;
    }
  }

  private gradientEvent(round: number, b: number, expected: number): GradientEvent {
    return gradientEvent(
      { redis: this.d.redis, model: this.config.model, layoutHash: this.d.plan.layoutHash }, b,
      { sumKey: K.gradSum(round), avgKey: K.gradAvg(round), expected, round },
      { batchKeys: this.d.data.batchKeys(b), chunkElements: this.config.chunkKib * 256, microBatch: this.config.microBatch },
    );
  }


  /** Averages what arrived, inside the database; later arrivals are refused there. */
  private async closeAverage(round: number, expected: number, failed: { batch: number; error: Error }[]): Promise<void> {
    const which = failed.map((f) => `b${f.batch}`).join(', ');
    const first = failed[0].error.message;
    let counted: number;
    try {
      counted = (await this.d.store.closeAccumulation(K.gradSum(round), K.gradAvg(round), round)).count;
    } catch (err) {
      if (!/no contribution .* arrived/.test((err as Error).message)) throw err;
      throw new DroppedError(this.d.id, round, `none of its ${expected} gradient(s) arrived before the function deadline; first error: ${first}`);
    }
    this.d.log(`round ${round}: gradient(s) ${which} failed until the function deadline (${first}); averaging the ${counted} of ${expected} that arrived`);
  }

  /** The last arrival averaged in the database; make sure the average is there. */
  async average(round: number): Promise<void> {
    const t = performance.now();
    const key = K.gradAvgRound(round);
    const ready = await this.d.inbox.until(async () => ((await this.d.local.get(key)) === String(round) ? true : null), this.config.deadlineMs);
    if (!ready) throw new Error(`peer ${this.d.id}: round ${round}'s average never appeared (a gradient function did not push)`);
    this.metrics.averageMs = performance.now() - t;
    this.metrics.averagedAt = wallClock();
  }

  private get mode() {
    return this.config.exchange === 'sharded' ? exchangeSharded : exchangeAll;
  }

  async exchange(round: number): Promise<void> {
    const t = performance.now();
    this.sent = await this.mode.send(this.input(round));
    this.metrics.exchangeMs = performance.now() - t;
  }

  async aggregate(round: number): Promise<void> {
    const t = performance.now();
    const r = await this.mode.aggregate(this.input(round), this.sent!);
    Object.assign(this.metrics, { bytesSent: r.bytesSent, bytesReceived: r.bytesReceived, waitMs: r.waitMs, aggregateMs: performance.now() - t });
    if (r.missing.length > 0) {
      this.d.log(`round ${round}: ${r.missing.join(', ')} missed the ${this.config.deadlineMs} ms deadline`);
      for (const id of r.missing) this.suspects.add(id);
    }
  }

  /**
   * The optimizer step, inside the database, atomically with the round marker: a restarted
   * peer never applies one round's update twice. Slots past `trainable` (batch-norm
   * statistics) take the aggregated value instead of a step.
   */
  async update(round: number): Promise<void> {
    const t = performance.now();
    if (Number((await this.d.local.get(K.round)) ?? 0) > round) return;
    const o = this.config.optimizer;
    const lr = this.metrics.lr;
    const agg = K.aggregate(round);
    const tx = this.d.local.multi();
    tx.addCommand(o.kind === 'sgd'
      ? sgdCommand(K.params, agg, K.velocity, { ...o, lr })
      : adamCommand(K.params, agg, K.adamM, K.adamV, K.adamStep, { ...o, lr }));
    const { length, trainable } = this.d.model;
    if (trainable < length) {
      // The batch-norm statistics are copied inside the database, in the update's MULTI.
      tx.addCommand(['PL.COPYRANGE', K.params, String(trainable), agg, String(trainable), String(length - trainable)]);
    }
    tx.set(K.round, String(round + 1));
    const replies = await tx.exec();
    const failed = replies.find((r) => r instanceof Error);
    if (failed) throw new Error(`peer ${this.d.id}: update of round ${round} failed: ${(failed as Error).message}`);
    this.metrics.updateMs = performance.now() - t;
    this.metrics.updatedAt = wallClock();
  }

  /**
   * The end of a round: every member reports its parameters' checksum, the round's
   * coordinator answers with the next round's members (joins, leaves and drops take effect
   * there, the same on every peer) and its checksum, the reference. A peer whose checksum
   * differs copies the state from the coordinator, so all replicas agree bit for bit.
   */
  async verify(round: number): Promise<void> {
    const t = performance.now();
    const mine = await this.d.store.checksum(K.params);
    const leaving = this.d.leaving();
    const agreed = await agree({
      round, me: this.d.id, members: this.members, suspects: this.suspects, report: { checksum: mine, leaving },
      layoutHash: this.d.plan.layoutHash, deadlineMs: this.config.deadlineMs,
      local: this.d.local, links: this.d.links, inbox: this.d.inbox, log: this.d.log,
    });
    this.metrics.waitMs += performance.now() - t;
    const { view, reference } = agreed;
    await this.d.membership.applyView(view);
    const stays = new Set(view.members.map((m) => m.id));
    const gone = this.members.filter((m) => !stays.has(m.id));
    this.metrics.dropped = gone.map((m) => m.id).filter((id) => id !== this.d.id || !leaving);
    if (this.metrics.dropped.length > 0) this.d.log(`round ${round}: ${this.metrics.dropped.join(', ')} dropped from round ${view.round} on`);
    await Promise.allSettled(gone.map((m) => this.d.links.forget(m.url)));
    if (!stays.has(this.d.id)) {
      if (!leaving) throw new DroppedError(this.d.id, view.round, `coordinator ${reference.id} left it out`);
      this.leftNetwork = true;
    }

    let checksum = mine;
    if (reference.checksum !== mine) {
      this.d.log(`round ${round}: checksum ${mine} differs from ${reference.id}'s ${reference.checksum}; repairing from it`);
      const source = await this.d.links.client(reference.url);
      await copyTrainingState(source, this.d.local);
      checksum = await this.d.store.checksum(K.params);
      this.metrics.repaired = true;
    }
    this.metrics.checksum = checksum;
    this.metrics.verifyMs = performance.now() - t;
    if ((round + 1) % this.config.checkEvery !== 0) this.finishRound();
  }

  /** The members of the round in progress (what a peer whose Redis lost its state still knows). */
  get currentMembers(): MemberRecord[] {
    return this.members;
  }

  /** Whether this peer's leave took effect at the end of the last round. */
  left(): boolean {
    return this.leftNetwork;
  }

  private finishRound(): void {
    this.metrics.roundMs = performance.now() - this.roundStart;
    this.metrics.costUsd = this.d.platform.metrics().estimatedCostUsd - this.metrics.costUsd;
    this.d.emitRound({ ...this.metrics });
  }

  /** Evaluates samples [start, start+count) of the held-out set with `evaluate` functions. */
  private async evaluateRange(start: number, count: number): Promise<{ loss: number; correct: number; samples: number }> {
    const v = this.d.data.validation;
    const parts: Promise<EvaluateResult>[] = [];
    for (let s = start; s < start + count; s += EVAL_CHUNK) {
      parts.push(this.d.platform.invoke('evaluate', {
        redis: this.d.redis, model: this.config.model, layoutHash: this.d.plan.layoutHash, layoutKey: K.layout,
        paramsKey: K.params, imagesKey: v.imagesKey, labelsKey: v.labelsKey, start: s, count: Math.min(EVAL_CHUNK, start + count - s),
      }));
    }
    const rs = await Promise.all(parts);
    return rs.reduce((a, r) => ({ loss: a.loss + r.loss * r.samples, correct: a.correct + r.correct, samples: a.samples + r.samples }), { loss: 0, correct: 0, samples: 0 });
  }

  /**
   * The convergence check: the members split the held-out set, each evaluates its slice and
   * sends its counts to all; a missing member's slice is evaluated here instead. Every peer
   * sums the same counts, so all reach the same decision.
   */
  async check(round: number): Promise<string | null> {
    const t = performance.now();
    const v = this.d.data.validation;
    let reason: string | null = null;
    if (v.count > 0) {
      const ranges = sliceRanges(v.count, this.members.length);
      const myIndex = this.members.findIndex((m) => m.id === this.d.id);
      const mine = await this.evaluateRange(ranges[myIndex].offset, ranges[myIndex].count);
      const key = K.evaluation(round, this.d.id);
      await this.d.local.set(key, JSON.stringify(mine));
      const others = this.members.filter((m) => m.id !== this.d.id);
      await Promise.allSettled(others.map((m) => this.d.links.sendValue(m.url, key, JSON.stringify(mine))));
      const { present } = await this.d.inbox.waitFor(others.map((m) => K.evaluation(round, m.id)), this.config.deadlineMs);
      let total = { ...mine };
      for (const [j, m] of this.members.entries()) {
        if (m.id === this.d.id) continue;
        const k = K.evaluation(round, m.id);
        const r = present.includes(k)
          ? (JSON.parse(String(await this.d.local.get(k))) as typeof mine)
          : await this.evaluateRange(ranges[j].offset, ranges[j].count);
        total = { loss: total.loss + r.loss, correct: total.correct + r.correct, samples: total.samples + r.samples };
      }
      const accuracy = total.correct / total.samples;
      this.lastValidationAccuracy = accuracy;
      this.metrics.validationAccuracy = accuracy;
      this.metrics.validationLoss = total.loss / total.samples;
      reason = await this.decide(accuracy);
    }
    this.metrics.checkMs = performance.now() - t;
    this.finishRound();
    return reason;
  }

  /** Target reached, or no better accuracy for `patience` checks: the same on every peer. */
  private async decide(accuracy: number): Promise<string | null> {
    const raw = await this.d.local.get(K.progress);
    const p: Progress = raw ? JSON.parse(raw) : { best: -1, checksSinceBest: 0 };
    if (accuracy > p.best) { p.best = accuracy; p.checksSinceBest = 0; } else p.checksSinceBest++;
    await this.d.local.set(K.progress, JSON.stringify(p));
    if (accuracy >= this.config.targetAccuracy) return `validation accuracy ${(accuracy * 100).toFixed(2)}% reached the target ${(this.config.targetAccuracy * 100).toFixed(2)}%`;
    if (this.config.patience > 0 && p.checksSinceBest >= this.config.patience) return `no better validation accuracy in ${p.checksSinceBest} checks (best ${(p.best * 100).toFixed(2)}%)`;
    return null;
  }

  limitReached(round: number): string | null {
    if (this.stopAt !== null && round >= this.stopAt) return `stop requested at round ${this.stopAt}`;
    if (round + 1 >= this.totalRounds) {
      return this.config.maxRounds > 0 && this.totalRounds === this.config.maxRounds
        ? `round limit ${this.config.maxRounds} reached`
        : `${this.config.epochs} epoch(s) done`;
    }
    return null;
  }
}

/** This peer's Redis no longer holds its state (it restarted empty): the peer must rejoin. */
export class LostStateError extends Error {
  constructor(peer: string, url: string) {
    super(`peer ${peer}: its Redis at ${url} lost its state (no ${K.identity})`);
    this.name = 'LostStateError';
  }
}
