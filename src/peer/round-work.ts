import { functionDeadline, learningRate, totalRounds } from '../config/training.ts';
import type { FunctionRedis } from '../functions/events.ts';
import { CallTimes } from '../platform/hedge.ts';
import type { FunctionPlatform } from '../platform/platform.ts';
import type { InDbTensorStore } from '../tensor/in-db.ts';
import { withoutCredentials, type Redis } from '../tensor/redis-client.ts';
import { ensureTensor, type DirectSender } from '../tensor/transfer.ts';
import { forwardJoinRequests } from './net/admission.ts';
import { DroppedError, whoSatOut } from './net/agreement.ts';
import { exchangeAll, exchangeSharded, exchangeShardedStep, waitForMembers, type ExchangeInput, type SendResult } from './round/exchange.ts';
import type { Inbox } from './net/inbox.ts';
import { K } from './net/keys.ts';
import type { PeerLinks } from './net/links.ts';
import type { Membership, MemberRecord } from './net/membership.ts';
import { gradientEvent } from './events.ts';
import { computeGradients, type ComputeResult } from './round/compute.ts';
import { applyUpdate, installGathered, stepSlice, type UpdateInput } from './round/update.ts';
import { previousOwners, recordRoundMembers, reshardOptimizerState } from './net/optimizer-slices.ts';
import { checkConvergence } from './round/evaluate.ts';
import { verifyRound } from './round/verify.ts';
import type { NetworkPlan } from './plan.ts';
import type { Phase, RoundWork } from './round-machine.ts';
import type { ModelInfo, PeerData, RoundMetrics } from './types.ts';

export interface RoundDeps {
  id: string;
  plan: NetworkPlan;
  local: Redis;
  store: InDbTensorStore;
  inbox: Inbox;
  links: PeerLinks;
  /** Sends tensors from this peer's Redis straight into the others' (transfer 'direct'). */
  direct: DirectSender;
  membership: Membership;
  platform: FunctionPlatform;
  data: PeerData;
  model: ModelInfo;
  /** The peer's Redis as functions reach it. */
  redis: FunctionRedis;
  emitRound(m: RoundMetrics): void;
  log(msg: string): void;
  /** Whether this peer was asked to leave (it says so in its next round report). */
  leaving(): boolean;
  /** The identity this peer's Redis must hold (K.identity); anything else means lost state. */
  identity: string;
  /** See RoundWork.beforePhase. */
  beforePhase?: (phase: Phase, round: number) => Promise<void>;
  /**
   * A round this peer runs again because none of its gradients arrived (it is alone, or every
   * member sat it out), and how many times: its calls get a longer function deadline.
   */
  rerun?: { round: number; count: number };
}

/**
 * The function deadline of a round run again for the `count`th time: doubled each time, up to
 * the round deadline. Nobody waits on such a round but joiners, which wait two deadlines: cold
 * instances on a busy machine, which missed the deadline once, get the time to build the model.
 */
export function rerunFunctionDeadline(config: NetworkPlan['config'], count: number): number {
  const base = functionDeadline(config);
  return Math.min(Math.max(base, config.deadlineMs), base * 2 ** count);
}

/** Where a round's gradients are summed and averaged (K.gradSum, K.gradAvg). */
interface Accumulation { sumKey: string; avgKey: string; roundKey: string }

const accumulation = (round: number, redo: boolean): Accumulation =>
  ({ sumKey: K.gradSum(round, redo), avgKey: K.gradAvg(round, redo), roundKey: K.gradAvgRound(round, redo) });

/** A round's gradients computed ahead, from the end of the round before's update. */
interface Ahead { round: number; startedAt: number; abandon: AbortController; result: Promise<ComputeResult> }

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
  /** Where the current round's gradients are summed. */
  private sums = accumulation(0, false);
  /** The next round's gradients, under way while this round ends (see computeAhead). */
  private ahead?: Ahead;
  /** This peer's recent gradient call times: when a call is slow enough to hedge. */
  private readonly callTimes = new CallTimes();

  constructor(private readonly d: RoundDeps) {}

  beforePhase(phase: Phase, round: number): Promise<void> {
    return this.d.beforePhase?.(phase, round) ?? Promise.resolve();
  }

  /** Elements per transfer chunk: the plan's KiB, 256 float32 each. */
  private get chunkElements(): number {
    return this.config.chunkKib * 256;
  }

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
      averageKey: this.sums.avgKey,
      length: this.d.model.length,
      rule: this.config.aggregation,
      fallback: this.config.fallbackAggregation,
      log: this.d.log,
      deadlineMs: this.config.deadlineMs,
      transfer: { chunkElements: this.chunkElements },
      local: this.d.local,
      direct: this.config.transfer === 'direct' ? this.d.direct : undefined,
      store: this.d.store,
      links: this.d.links,
      inbox: this.d.inbox,
      stepSlice: (slice) => stepSlice(this.updateInput(round), slice),
    };
  }

  private updateInput(round: number): UpdateInput {
    return { peer: this.d.id, round, local: this.d.local, optimizer: this.config.optimizer, lr: this.metrics.lr, model: this.d.model };
  }

  /** Whether each member owns a slice of the exchange (reduce-scatter then all-gather). */
  private get sharded(): boolean {
    return this.config.exchange !== 'all';
  }

  async prepare(round: number): Promise<void> {
    this.roundStart = performance.now();
    this.suspects = new Set();
    const [identity, stopAt] = await Promise.all([this.d.local.get(K.identity), this.d.local.get(K.stopAt)]);
    if (identity !== this.d.identity) throw new LostStateError(this.d.id, withoutCredentials(this.d.redis.url));
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
    if (this.sharded) await ensureTensor(this.d.local, K.aggregate(round), this.d.model.length);
    if (this.config.exchange === 'sharded-step') {
      await ensureTensor(this.d.local, K.nextParams(round), this.d.model.length);
      const moved = await reshardOptimizerState({
        round, me: this.d.id, members: this.members, before: await previousOwners(this.d.local, await this.d.membership.all(), round),
        length: this.d.model.length, optimizer: this.config.optimizer, local: this.d.local, links: this.d.links,
        deadlineMs: this.config.deadlineMs, chunkElements: this.chunkElements, log: this.d.log,
      });
      if (moved && moved.fetched + moved.lost > 0) this.d.log(`round ${round}: the members changed; fetched the optimizer state of ${moved.fetched} elements of this peer's slice from their previous owners${moved.lost > 0 ? `, ${moved.lost} lost` : ''}`);
      await recordRoundMembers(this.d.local, round, this.members);
    }
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
   * The compute phase (round/compute.ts): one gradient function per batch. When the calls
   * were started ahead (computeAhead), the phase waits for them; functionWallMs then counts
   * from their start, computeMs only the wait.
   */
  async compute(round: number): Promise<void> {
    const t = performance.now();
    const ahead = this.ahead?.round === round ? this.ahead : undefined;
    if (ahead) this.ahead = undefined;
    else this.abandonAhead(); // another round's: not this one's gradients
    // A round whose gradients computed ahead were thrown away sums them again in fresh keys.
    this.sums = accumulation(round, !ahead && (await this.d.local.exists(K.redo(round))) > 0);
    const r = await (ahead?.result ?? this.computeRound(round, this.sums)).catch(async (err: unknown) => {
      if (err instanceof DroppedError) await this.announceSittingOut(round);
      throw err;
    });
    const now = performance.now();
    Object.assign(this.metrics, r, { functionWallMs: now - (ahead?.startedAt ?? t), computeMs: now - t });
    if (r.samples > 0) this.lastLoss = r.loss;
  }

  /**
   * None of this peer's gradients arrived: it sits the round out and rejoins. It says so to
   * the others first, so that they stop waiting for its average, and so that their coordinator
   * counts it toward the round's quorum (it will not go on on its own): a founding pair whose
   * lowest id sits out round 0 goes on as one peer, which then admits it again.
   */
  private async announceSittingOut(round: number): Promise<void> {
    const others = this.members.filter((m) => m.id !== this.d.id);
    const marker = K.sitsOut(round, this.d.id);
    await this.d.local.set(marker, '1');
    await this.d.links.sendToAll(others.map((m) => m.url), marker, '1');
    // The round's lowest id waits to learn what every other member does with the round: its
    // average arrives, or its own marker. If all sat it out, this peer runs the round again
    // and admits them at its end, rather than every one of them waiting to rejoin through
    // another (peer.ts).
    if (this.members[0]?.id !== this.d.id || others.length === 0) return;
    const sent = (id: string) => (this.sharded ? K.part(round, this.d.id, id) : K.from(round, id));
    const x = { round, deadlineMs: this.config.deadlineMs, local: this.d.local, inbox: this.d.inbox };
    await waitForMembers(x, others.map((m) => ({ id: m.id, key: sent(m.id) })));
  }

  private functionDeadlineOf(round: number): number {
    const rerun = this.d.rerun;
    return rerun?.round === round ? rerunFunctionDeadline(this.config, rerun.count) : functionDeadline(this.config);
  }

  private computeRound(round: number, sums: Accumulation, abandon?: AbortSignal): Promise<ComputeResult> {
    const sum = { sumKey: sums.sumKey, avgKey: sums.avgKey };
    return computeGradients({
      peer: this.d.id, round, batches: this.batchesOf(round), until: performance.now() + this.functionDeadlineOf(round),
      event: (b, expected) => gradientEvent(
        { redis: this.d.redis, model: this.d.model.ref, layoutHash: this.d.plan.layoutHash, samples: this.d.data.samples }, b,
        { ...sum, expected, round },
        { batchKeys: this.d.data.batchKeys(b), chunkElements: this.chunkElements, microBatch: this.config.microBatch, checkpoint: this.config.checkpoint, backend: this.config.backend },
      ),
      platform: this.d.platform, store: this.d.store, ...sum, abandon, callTimes: this.callTimes,
      log: this.d.log, inFlight: (d) => { this.inFlightCount += d; },
    });
  }

  /**
   * Starts the next round's gradients as soon as this round's update is in: they need only
   * the parameters, while the rest of the round (the membership agreement, the check, the next
   * round's preparation) keeps the functions otherwise idle. The result is the same as
   * computing them in the next round's compute phase, unless the agreement repairs this
   * peer's parameters: then the calls are thrown away and the round computes its gradients
   * again, summed in fresh keys (K.gradSum's redo set), so that no call started on the wrong
   * parameters can count.
   */
  private computeAhead(round: number): void {
    if (this.limitReached(round - 1) !== null || this.d.leaving() || this.leftNetwork) return;
    const abandon = new AbortController();
    const result = this.computeRound(round, accumulation(round, false), abandon.signal);
    result.catch(() => {}); // awaited by the round's compute phase, unless thrown away
    this.ahead = { round, startedAt: performance.now(), abandon, result };
  }

  /** Throws the gradients computed ahead away: no retries; calls under way land unread. */
  abandonAhead(): number | null {
    const round = this.ahead?.round ?? null;
    this.ahead?.abandon.abort();
    this.ahead = undefined;
    return round;
  }

  /** The last arrival averaged in the database; make sure the average is there. */
  async average(round: number): Promise<void> {
    const t = performance.now();
    const key = this.sums.roundKey;
    const ready = await this.d.inbox.until(async () => ((await this.d.local.get(key)) === String(round) ? true : null), this.config.deadlineMs);
    if (!ready) throw new Error(`peer ${this.d.id}: round ${round}'s average never appeared (a gradient function did not push)`);
    this.metrics.averageMs = performance.now() - t;
    this.metrics.averagedAt = wallClock();
  }

  private get mode() {
    return { all: exchangeAll, sharded: exchangeSharded, 'sharded-step': exchangeShardedStep }[this.config.exchange];
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
      const satOut = await whoSatOut(this.d.local, round, r.missing);
      const late = r.missing.filter((id) => !satOut.includes(id));
      if (satOut.length > 0) this.d.log(`round ${round}: ${satOut.join(', ')} sat the round out (none of its gradients arrived)`);
      if (late.length > 0) this.d.log(`round ${round}: ${late.join(', ')} missed the ${this.config.deadlineMs} ms deadline`);
      for (const id of r.missing) this.suspects.add(id);
    }
  }

  /** The update phase (round/update.ts): the optimizer step inside the database. */
  async update(round: number): Promise<void> {
    const t = performance.now();
    // Exchange 'sharded-step': the owners took the steps; the update installs what they gathered.
    const applied = await (this.config.exchange === 'sharded-step' ? installGathered : applyUpdate)(this.updateInput(round));
    this.computeAhead(round + 1);
    if (!applied) return;
    this.metrics.updateMs = performance.now() - t;
    this.metrics.updatedAt = wallClock();
  }

  /** The end of a round (round/verify.ts): checksums agreed, the next view applied, a repair if needed. */
  async verify(round: number): Promise<void> {
    const t = performance.now();
    // A failure here ends the round machine, and the peer throws the gradients computed ahead away.
    const r = await verifyRound({
      peer: this.d.id, round, members: this.members, suspects: this.suspects, leaving: this.d.leaving(),
      layoutHash: this.d.plan.layoutHash, deadlineMs: this.config.deadlineMs, local: this.d.local, store: this.d.store,
      links: this.d.links, inbox: this.d.inbox, membership: this.d.membership, log: this.d.log,
    });
    if (r.left) this.leftNetwork = true;
    if (r.repaired) {
      // The gradients computed ahead started from the parameters the repair replaced. The
      // marker goes first: a peer restarted after the repair finds it (see compute).
      await this.d.local.set(K.redo(round + 1), '1');
      const next = this.abandonAhead();
      if (next !== null) this.d.log(`round ${round}: the gradients of round ${next} computed ahead were on the repaired parameters; computing them again`);
    }
    Object.assign(this.metrics, { checksum: r.checksum, repaired: r.repaired, dropped: r.dropped, waitMs: this.metrics.waitMs + r.waitMs });
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

  /** The convergence check (round/evaluate.ts), every `checkEvery` rounds. */
  async check(round: number): Promise<string | null> {
    const t = performance.now();
    let reason: string | null = null;
    if (this.d.data.validation.count > 0) {
      const r = await checkConvergence({
        peer: this.d.id, round, members: this.members, validation: this.d.data.validation, platform: this.d.platform,
        redis: this.d.redis, model: this.d.model.ref, samples: this.d.data.samples, layoutHash: this.d.plan.layoutHash, config: this.config,
        local: this.d.local, links: this.d.links, inbox: this.d.inbox,
      });
      this.metrics.validationLoss = r.loss;
      if (r.mae !== undefined) this.metrics.validationMae = r.mae;
      else {
        this.lastValidationAccuracy = r.accuracy;
        this.metrics.validationAccuracy = r.accuracy;
      }
      reason = r.stop;
    }
    this.metrics.checkMs = performance.now() - t;
    this.finishRound();
    return reason;
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
