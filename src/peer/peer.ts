import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { parseTrainingConfig } from '../config/training.ts';
import { withTimeout } from '../platform/retry.ts';
import { InDbTensorStore } from '../tensor/in-db.ts';
import { closeRedis, connectionCause, connectRedis, withoutCredentials, type Redis } from '../tensor/redis-client.ts';
import { DirectSender } from '../tensor/transfer.ts';
import { awaitAdmission, joinRequest, sendJoinRequest } from './net/admission.ts';
import { startHeartbeat } from './net/heartbeat.ts';
import { Inbox } from './net/inbox.ts';
import { K } from './net/keys.ts';
import { PeerLinks } from './net/links.ts';
import { Membership, type MemberRecord } from './net/membership.ts';
import { createRoundActor, type RoundActor } from './round-machine.ts';
import { RoundRunner, rerunFunctionDeadline } from './round-work.ts';
import { copyTrainingState } from './net/state-copy.ts';
import type { PeerOptions, PeerOutcome, PeerStatus, RoundMetrics } from './types.ts';
import { PROTOCOL, protocolMismatch, readPlan, type NetworkPlan } from './plan.ts';
import { closeAdmission, ensureUsers, openForAdmission } from './net/access.ts';
import { whoSatOut } from './net/agreement.ts';
import { recordRound } from './round-log.ts';

/** Times the network's only member runs a round again when none of its gradients arrived. */
const ALONE_RETRIES = 3;

/** The peer's own Redis stayed away (or came back empty with no data to store again): the end's cause. */
class LocalRedisError extends Error {}

/** What a peer's Redis says about whose state it holds (K.identity). */
interface Identity {
  network: string;
  peer: string;
  incarnation: number;
}

/**
 * A peer: its own Redis (the state), a membership, a round state machine, and a platform
 * to which it offloads its gradient computations. Events: 'status' (PeerStatus) at every
 * transition, 'round' (RoundMetrics) after every round, 'log' (string) for notable events.
 */
export class Peer extends EventEmitter {
  readonly id: string;
  private local!: Redis;
  private store!: InDbTensorStore;
  private inbox!: Inbox;
  private readonly links: PeerLinks;
  private readonly direct: DirectSender;
  private membership!: Membership;
  private plan!: NetworkPlan;
  private actor?: RoundActor;
  private stopHeartbeat?: () => void;
  private runner?: RoundRunner;
  private startRound = 0;
  /** Asked to leave: said in the next round report, and not rejoined when dropped. */
  private leaving = false;
  private closing = false;
  private identity?: Identity;
  /** Errors of the connection to this peer's own Redis (counted; the first of an outage is logged). */
  private localErrors = 0;
  private localDown = false;
  /** A founding group registers (other peers write the member records) until the first round. */
  private founding = false;
  /** How often the network's only member ran a round again after none of its gradients arrived. */
  private aloneRetries = { round: -1, count: 0 };

  constructor(private readonly opts: PeerOptions) {
    super();
    this.id = opts.id;
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(opts.id)) throw new Error(`peer id "${opts.id}" must be 1-64 letters, digits, '.', '_' or '-'`);
    this.links = new PeerLinks(this.secret);
    this.direct = new DirectSender(opts.redis);
  }

  /** The address in this peer's record: never with the credentials its own URL may carry. */
  get url(): string {
    return withoutCredentials(this.opts.advertiseUrl ?? this.opts.redis.url);
  }

  /** Its own Redis as logs and errors name it: the address, never the password its URL may carry. */
  private get localAddress(): string {
    return withoutCredentials(this.opts.redis.url);
  }

  /** The network secret the other peers', functions' and observers' users derive from. */
  private get secret(): string | undefined {
    return this.opts.networkPassword ?? this.opts.redis.password;
  }

  /** This peer's own record. */
  private record(fromRound: number): MemberRecord {
    return { id: this.id, url: this.url, fromRound, shard: this.opts.shard };
  }

  /**
   * Connects to the peer's Redis and takes its place in the network: resumes from the state
   * kept there, founds a network, or joins one through a bootstrap peer.
   */
  async start(): Promise<void> {
    // Commands fail at once while the Redis is away (the round fails, and the peer recovers or
    // says why it cannot); the client keeps reconnecting, so a Redis that comes back is used.
    this.local = await connectRedis(this.opts.redis, { name: `peerless-${this.id}`, failFast: true, reconnectForever: true });
    this.local.on('error', (err: Error) => {
      this.localErrors++;
      if (!this.localDown && !this.closing) this.log(`its Redis at ${this.localAddress} is unreachable (${connectionCause(err)})`);
      this.localDown = true;
    });
    this.local.on('ready', () => {
      if (this.localDown && !this.closing) this.log(`its Redis at ${this.localAddress} answers again`);
      this.localDown = false;
    });
    this.founding = (await readPlan(this.local)) === null && (this.opts.found !== undefined || this.opts.bootstrap?.fromRound === 0);
    await this.ensureAccess();
    this.store = new InDbTensorStore(this.local);
    this.membership = new Membership(this.local);
    this.inbox = new Inbox(this.local);
    await this.inbox.start();

    await this.warmFunctions();
    const existing = await readPlan(this.local);
    if (existing) await this.resume(existing);
    else if (this.opts.found) await this.found();
    else if (this.opts.bootstrap) await this.join(this.opts.bootstrap.url, this.opts.bootstrap.fromRound);
    else throw new Error(`peer ${this.id}: no network state in ${this.localAddress}, and neither a configuration to found one nor a bootstrap address to join`);

    this.checkModel();
    this.startBeating();
  }

  /**
   * Has the functions build the model before the first round, where the platform can (the
   * local one). Otherwise a fresh instance builds it inside its first call's deadline; on a busy
   * machine that call misses it, the instance is ended, and the retry lands on a new instance
   * as cold as the first: a founder ran round 0 three times and failed. A model file is left to
   * the calls (its topology is read from the peer's Redis, which they reach and this does not give).
   */
  private async warmFunctions(): Promise<void> {
    const { platform, model, data } = this.opts;
    if (!platform.warm || model.ref.topologyKey) return;
    try {
      await platform.warm([{ model: model.ref, samples: data.samples }]);
    } catch (err) {
      this.log(`its functions could not build the model ahead (${(err as Error).message}); their first calls build it`);
    }
  }

  /** With a network secret: the other peers', functions' and observers' users in this peer's Redis (access.ts). */
  private async ensureAccess(): Promise<void> {
    const secret = this.secret;
    if (!secret) return;
    try {
      await ensureUsers(this.local, secret, { founding: this.founding });
    } catch (err) {
      throw new Error(`peer ${this.id}: cannot create the other peers', functions' and observers' users in its Redis at ${this.url}: ${(err as Error).message}`);
    }
  }

  private checkModel(): void {
    const m = this.opts.model;
    if (m.layoutHash !== this.plan.layoutHash || m.length !== this.plan.length) {
      throw new Error(
        `peer ${this.id}: model ${this.plan.config.model.name} layout ${m.layoutHash} (${m.length} params) does not match the network's ${this.plan.layoutHash} (${this.plan.length} params)`,
      );
    }
  }

  private async found(): Promise<void> {
    const f = this.opts.found!;
    const config = parseTrainingConfig(f.config);
    if (f.initialParams.length !== this.opts.model.length) {
      throw new Error(`peer ${this.id}: initial parameters have ${f.initialParams.length} elements, the model ${this.opts.model.length}`);
    }
    this.plan = { config, roundsPerEpoch: f.roundsPerEpoch, layoutHash: this.opts.model.layoutHash, length: this.opts.model.length, network: randomUUID(), protocol: PROTOCOL };
    this.links.timeoutMs = config.deadlineMs;
    await this.store.set(K.params, f.initialParams);
    await this.local
      .multi()
      .set(K.layout, this.plan.layoutHash)
      .set(K.round, '0')
      .del(K.members)
      .hSet(K.members, this.id, JSON.stringify(this.record(0)))
      .set(K.config, JSON.stringify(this.plan))
      .exec();
    this.startRound = 0;
    await this.takeIdentity();
    this.log(`founded the network (model ${config.model.name}, ${this.plan.length} params, layout ${this.plan.layoutHash})`);
  }

  /**
   * Joins a running network through any of its members: asks to be admitted (the request
   * reaches the round's coordinator, see admission.ts) and waits in its own Redis for the
   * admission, which comes with the training state every member has at the end of a round.
   * With `fromRound` 0, joins a founding group instead: the network has not run a round yet.
   */
  private async join(bootstrapUrl: string, fromRound?: number): Promise<void> {
    const boot = await this.links.client(bootstrapUrl).catch((err: Error) => {
      throw new Error(`peer ${this.id}: bootstrap peer ${bootstrapUrl} does not answer: ${err.message}`);
    });
    const plan = await readPlan(boot);
    if (!plan) throw new Error(`peer ${this.id}: ${bootstrapUrl} holds no Peerless network (no ${K.config})`);
    const mismatch = protocolMismatch(plan, bootstrapUrl);
    if (mismatch) throw new Error(`peer ${this.id}: ${mismatch}`);
    this.plan = plan;
    this.checkModel();
    this.links.timeoutMs = plan.config.deadlineMs;
    if (fromRound !== undefined) return this.joinFoundingGroup(boot, bootstrapUrl, fromRound);

    const req = joinRequest(this.record(0), plan.layoutHash);
    const waitMs = plan.config.deadlineMs * 2;
    // The coordinator writes the state copy and the admission into this Redis as a user of this
    // request's own, which lives only until the answer (access.ts: openForAdmission).
    const secret = this.secret;
    if (secret) await openForAdmission(this.local, secret, req.nonce);
    try {
      await this.askToJoin(boot, bootstrapUrl, req, waitMs);
    } finally {
      if (secret) await closeAdmission(this.local).catch(() => {});
    }
  }

  private async askToJoin(boot: Redis, bootstrapUrl: string, req: ReturnType<typeof joinRequest>, waitMs: number): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      await sendJoinRequest(boot, req);
      const a = await awaitAdmission(this.local, this.inbox, req.nonce, waitMs);
      if (a?.refused) throw new Error(`peer ${this.id}: the network of ${bootstrapUrl} refused it: ${a.refused}`);
      if (a?.round !== undefined) {
        this.plan = (await readPlan(this.local))!;
        this.startRound = a.round;
        await this.takeIdentity();
        this.log(`joined through ${bootstrapUrl} from round ${a.round} (${(await this.membership.activeAt(a.round)).length} members)`);
        return;
      }
      const state = await boot.get(K.state);
      const phase = state ? (JSON.parse(state) as PeerStatus).phase : null;
      if (phase === 'done' || phase === 'failed' || phase === 'left') {
        throw new Error(`peer ${this.id}: the network ended (bootstrap peer ${bootstrapUrl} is ${phase}) before this peer was admitted`);
      }
      if (attempt >= 10) throw new Error(`peer ${this.id}: not admitted by the network of ${bootstrapUrl} after ${(attempt * waitMs) / 1000} s`);
    }
  }

  /**
   * A founding group (a local cluster): every peer registers for round 0 before the network
   * runs, one after another, so each finds all earlier ones in the bootstrap's records.
   */
  private async joinFoundingGroup(boot: Redis, bootstrapUrl: string, fromRound: number): Promise<void> {
    const bootRound = Number((await boot.get(K.round)) ?? 0);
    if (fromRound !== 0 || bootRound !== 0 || (await boot.get(K.state)) !== null) {
      throw new Error(`peer ${this.id}: a founding group can only be joined for round 0, before the network runs (${bootstrapUrl} is at round ${bootRound})`);
    }
    const members = await new Membership(boot).all();
    const clash = members.find((m) => m.id === this.id && m.url !== this.url);
    if (clash) throw new Error(`peer ${this.id}: the id is already taken by the member at ${clash.url}`);
    const me = this.record(0);
    await this.local.del(K.members);
    for (const m of members) if (m.id !== this.id) await this.membership.put(m);
    await this.membership.put(me);
    await Promise.all(members.filter((m) => m.id !== this.id).map(async (m) => {
      const c = await this.links.client(m.url);
      await c.hSet(K.members, this.id, JSON.stringify(me));
    }));
    await copyTrainingState(boot, this.local);
    await this.local.multi().set(K.layout, this.plan.layoutHash).set(K.round, '0').set(K.config, JSON.stringify(this.plan)).exec();
    this.startRound = 0;
    await this.takeIdentity();
    this.log(`joined the founding group through ${bootstrapUrl} (${members.length} members before)`);
  }

  /** Marks this peer's Redis as holding its state in this network: one more incarnation. */
  private async takeIdentity(): Promise<void> {
    this.identity = { network: this.plan.network ?? 'unnamed', peer: this.id, incarnation: (this.identity?.incarnation ?? 0) + 1 };
    await this.local.set(K.identity, JSON.stringify(this.identity));
  }

  /** Restarts from the state kept in this peer's Redis: the round in progress is run again. */
  private async resume(plan: NetworkPlan): Promise<void> {
    const mismatch = protocolMismatch(plan, `its Redis at ${this.localAddress}`);
    if (mismatch) throw new Error(`peer ${this.id}: ${mismatch}`);
    this.plan = plan;
    const marker = Number((await this.local.get(K.round)) ?? 0);
    const saved = await this.local.get(K.state);
    const status = saved ? (JSON.parse(saved) as PeerStatus) : null;
    // A peer stopped mid-round runs that round again (its phases are idempotent; the update
    // is guarded by the marker); one that had finished goes on from the marker.
    const finished = status === null || status.phase === 'done' || status.phase === 'left';
    this.startRound = finished ? marker : Math.min(marker, status.round);
    const mine = (await this.membership.all()).find((m) => m.id === this.id);
    if (mine && mine.leftAt !== undefined && mine.leftAt <= this.startRound) {
      const other = (await this.membership.activeAt(this.startRound)).find((m) => m.id !== this.id);
      if (!other) throw new Error(`peer ${this.id}: it was dropped from the network and knows no live member to rejoin through`);
      this.log(`was dropped at round ${mine.leftAt}; rejoining through ${other.id}`);
      await this.local.del(K.state);
      await this.join(other.url);
      return;
    }
    this.links.timeoutMs = plan.config.deadlineMs;
    const held = await this.local.get(K.identity);
    if (held) this.identity = JSON.parse(held) as Identity;
    else await this.takeIdentity();
    this.log(`resumed at round ${this.startRound}`);
  }

  private startBeating(): void {
    // Every member beats at the same period (from the network's deadline): the others judge a
    // still heartbeat by it (agreement.ts).
    this.stopHeartbeat = startHeartbeat(this.id, this.plan.config.deadlineMs, async () => {
      const members = await this.membership.activeAt(this.actor?.getSnapshot().context.round ?? this.startRound);
      return members.map(async (m) => (m.id === this.id ? this.local : this.links.client(m.url)));
    });
  }

  /**
   * Runs rounds until the network stops, this peer leaves, or a phase fails. A peer the
   * network dropped (it missed a deadline) asks to be admitted again and goes on.
   */
  async run(): Promise<PeerOutcome> {
    if (this.founding) {
      // Every founding member registered before any runs: the records are closed to the others.
      this.founding = false;
      await this.ensureAccess();
    }
    for (;;) {
      const errorsBefore = this.localErrors;
      const state = await this.runRounds();
      const ctx = this.actor!.getSnapshot().context;
      if (state !== 'failed' || this.closing) return this.finish(state);
      try {
        if (ctx.errorName === 'DroppedError' && !this.leaving) {
          // Dropped because its Redis came back empty mid-round (its functions then find no
          // model or batches): store the data again before rejoining, or it is dropped again
          // every round.
          if (await this.lostState()) {
            await this.recoverLocal(ctx.error ?? 'its Redis lost its state');
            continue;
          }
          // The network's only member (its founder before anyone joined, say) has nobody to
          // go on without it and nobody to rejoin through: it runs the round again, a few times.
          // So does the lowest id of a round every member sat out (none of anyone's gradients
          // arrived): the others rejoin through it.
          const known = await this.knownMembers();
          const alone = known.every((m) => m.id === this.id);
          if (alone || (await this.everyoneSatOut(ctx.round, known))) {
            const again = this.aloneRetries.round === ctx.round ? this.aloneRetries.count + 1 : 1;
            if (again > ALONE_RETRIES) return this.finish(state);
            this.aloneRetries = { round: ctx.round, count: again };
            const who = alone ? 'the network\'s only member' : `every member sat round ${ctx.round} out; the lowest id`;
            this.log(`${ctx.error}; ${who}, it runs round ${ctx.round} again (${again} of ${ALONE_RETRIES}), its calls given ${rerunFunctionDeadline(this.plan.config, again)} ms`);
            this.startRound = ctx.round;
            await this.sayGoingOn();
            // Calls that missed the deadline ended their instances: the new ones start cold.
            await this.warmFunctions();
            continue;
          }
          this.log(`${ctx.error}; asking to rejoin`);
          await this.sayGoingOn();
          await this.warmFunctions();
          await this.rejoin(await this.knownMembers());
          continue;
        }
        if (ctx.errorName === 'LostStateError' || this.localErrors > errorsBefore) {
          await this.recoverLocal(ctx.error ?? 'its Redis failed');
          continue;
        }
      } catch (err) {
        let failure = err as Error;
        // Its own Redis gone meanwhile (killed while this peer asked to rejoin, say) is the
        // cause to name, not the "client is offline" of the step it broke: wait for it one
        // deadline like any Redis failure, and go on if it comes back.
        if (!(failure instanceof LocalRedisError) && !this.closing && !(await this.localAnswers())) {
          try {
            await this.recoverLocal(failure.message);
            continue;
          } catch (lost) {
            failure = lost as Error;
          }
        }
        await this.writeState(this.status()); // failed, after all
        return { id: this.id, state: 'failed', rounds: ctx.round, stopReason: null, error: failure.message, checksum: null };
      }
      return this.finish(state);
    }
  }

  /**
   * Its round machine ended "failed", but the peer goes on (it runs the round again, or
   * rejoins): its state says "starting" meanwhile. A joiner waiting for this peer to admit it
   * reads "failed" as the network's end and stops asking; one did, in a CI run, while a lone
   * founder warmed its functions to run round 0 again. (The machine's own "failed" is never
   * written: `finish` writes it when the peer does end.)
   */
  private async sayGoingOn(): Promise<void> {
    await this.writeState({ ...this.status(), phase: 'starting' });
  }

  /** Its status where others read it (joiners, `peerless status`); a Redis away loses only this write. */
  private async writeState(status: PeerStatus): Promise<void> {
    await this.local.set(K.state, JSON.stringify(status)).catch(() => {});
  }

  /**
   * The round failed while this peer's Redis was away. It waits one deadline for the Redis to
   * answer; one that kept its state resumes the round, one that came back empty (no identity)
   * gets the peer's data again and rejoins by state copy, and one that stays away ends the
   * peer with a message naming the address and the cause.
   */
  private async recoverLocal(failure: string): Promise<void> {
    const url = this.localAddress;
    const known = await this.knownMembers();
    const wait = this.plan.config.deadlineMs;
    const end = Date.now() + wait;
    let cause = failure;
    for (;;) {
      try {
        await this.local.ping();
        break;
      } catch (err) {
        cause = connectionCause(err as Error);
      }
      if (Date.now() > end) throw new LocalRedisError(`peer ${this.id}: its Redis at ${url} is unreachable (${cause}); gave up after ${wait} ms`);
      await new Promise((r) => setTimeout(r, 250));
    }
    await this.ensureAccess(); // a Redis that restarted lost its users
    const held = await this.local.get(K.identity);
    const mine = this.identity ? JSON.stringify(this.identity) : null;
    if (held !== null && held === mine) {
      this.log(`its Redis at ${url} kept its state; resuming`);
      await this.resume(this.plan);
      return;
    }
    if (!this.opts.restoreData) throw new LocalRedisError(`peer ${this.id}: its Redis at ${url} came back without its state, and this peer cannot store its data again`);
    this.log(`its Redis at ${url} came back without its state; storing its data again and rejoining by state copy`);
    await this.opts.restoreData(this.local);
    await this.rejoin(known);
  }

  /** Whether this peer is the lowest id of `members` (a round's), every one of which sat the round out. */
  private async everyoneSatOut(round: number, members: MemberRecord[]): Promise<boolean> {
    if (members[0]?.id !== this.id) return false;
    const satOut = await whoSatOut(this.local, round, members.map((m) => m.id)).catch(() => []);
    return satOut.length === members.length;
  }

  /** Whether this peer's Redis no longer holds its identity (restarted empty), or cannot say. */
  private async lostState(): Promise<boolean> {
    try {
      return (await this.local.get(K.identity)) !== (this.identity ? JSON.stringify(this.identity) : null);
    } catch {
      return true;
    }
  }

  /** Whether its own Redis answers a PING within one deadline (a hung one does not). */
  private localAnswers(): Promise<boolean> {
    const ms = this.plan.config.deadlineMs;
    return withTimeout(this.local.ping(), ms, () => new Error(`no PONG within ${ms} ms`)).then(() => true, () => false);
  }

  /** The members this peer knows: its records, or (when those are lost) the last round's. */
  private async knownMembers(): Promise<MemberRecord[]> {
    const round = this.actor?.getSnapshot().context.round ?? this.startRound;
    const recorded = await this.membership.all().catch(() => []);
    const live = recorded.filter((m) => m.leftAt === undefined || m.leftAt > round);
    return live.length > 0 ? live : (this.runner?.currentMembers ?? []);
  }

  private runRounds(): Promise<'done' | 'left' | 'failed'> {
    this.runner = new RoundRunner({
      id: this.id,
      plan: this.plan,
      local: this.local,
      store: this.store,
      inbox: this.inbox,
      links: this.links,
      direct: this.direct,
      membership: this.membership,
      platform: this.opts.platform,
      data: this.opts.data,
      model: this.opts.model,
      redis: { url: this.url },
      emitRound: (m: RoundMetrics) => {
        void recordRound(this.local, m).catch(() => {});
        this.emit('round', m);
      },
      log: (msg: string) => this.log(msg),
      leaving: () => this.leaving,
      identity: JSON.stringify(this.identity),
      beforePhase: this.opts.beforePhase,
      rerun: this.aloneRetries.round >= 0 ? { ...this.aloneRetries } : undefined,
    });
    const actor = createRoundActor(this.runner, this.startRound, this.plan.config.checkEvery);
    this.actor = actor;
    const ended = new Promise<'done' | 'left' | 'failed'>((resolve) => {
      const sub = actor.subscribe((snap) => {
        const status = this.status();
        // A failed machine's end is not the peer's: run() decides whether it goes on (and says
        // 'starting') or ends (and says 'failed'). A joiner reading 'failed' meanwhile would quit.
        if (snap.value !== 'failed') void this.writeState(status);
        this.emit('status', status);
        if (snap.status === 'done') {
          sub.unsubscribe();
          // The next round's gradients, if started ahead, are not wanted by a machine that ended.
          this.runner?.abandonAhead();
          resolve(snap.value as 'done' | 'left' | 'failed');
        }
      });
    });
    actor.start();
    return ended;
  }

  /**
   * Asks the members it knew to admit it again, in turn, for up to ten deadlines: a peer cut
   * off by the network keeps asking until the cut heals (or gives up, saying why).
   */
  private async rejoin(known: MemberRecord[]): Promise<void> {
    const others = known.filter((k) => k.id !== this.id);
    const deadline = this.plan.config.deadlineMs;
    const until = Date.now() + 10 * deadline;
    let errors: string[] = [];
    for (let attempt = 0; ; attempt++) {
      errors = [];
      for (const m of others) {
        try {
          await this.join(m.url);
          return;
        } catch (err) {
          // Which member each reason is about: a member's Redis gone says only "The client is offline".
          const msg = (err as Error).message;
          errors.push(msg.includes(m.url) ? msg : `${m.id} at ${m.url}: ${msg}`);
        }
      }
      // Without its own Redis no member can admit it: run() names that cause instead.
      if (this.closing || this.localDown || Date.now() >= until || others.length === 0) break;
      // Each attempt's reasons, so a peer that stays out says why while it keeps asking.
      this.log(`no member it knew admitted it (${errors.join('; ')}); asking again${attempt === 0 ? ` until ${new Date(until).toISOString()}` : ''}`);
      await new Promise((r) => setTimeout(r, Math.min(deadline, 1_000 * 2 ** Math.min(attempt, 4))));
    }
    throw new Error(`peer ${this.id}: out of the network, and no member it knew admitted it again${errors.length ? `: ${errors.join('; ')}` : ''}`);
  }

  private async finish(state: 'done' | 'left' | 'failed'): Promise<PeerOutcome> {
    const ctx = this.actor!.getSnapshot().context;
    if (state === 'failed') await this.writeState(this.status());
    if (state === 'left') this.log(`left the network after round ${ctx.round}`);
    const checksum = await this.store.checksum(K.params).catch(() => null);
    return { id: this.id, state, rounds: ctx.round + 1, stopReason: ctx.stopReason, error: ctx.error, checksum };
  }

  /** Asks the peer to leave cleanly at the next round boundary. */
  leave(): void {
    this.leaving = true;
    this.actor?.send({ type: 'LEAVE' });
  }

  status(): PeerStatus {
    const snap = this.actor?.getSnapshot();
    const r = this.runner;
    return {
      id: this.id,
      round: snap?.context.round ?? this.startRound,
      phase: (snap ? String(snap.value) : 'starting') as PeerStatus['phase'],
      inFlight: r?.inFlightCount ?? 0,
      loss: r?.lastLoss ?? null,
      validationAccuracy: r?.lastValidationAccuracy ?? null,
      stopReason: snap?.context.stopReason ?? null,
      error: snap?.context.error ?? null,
      updatedAt: Date.now(),
    };
  }

  get roundsPerEpoch(): number {
    return this.plan.roundsPerEpoch;
  }

  async checksum(): Promise<string> {
    return this.store.checksum(K.params);
  }

  private log(msg: string): void {
    this.emit('log', `${this.id}: ${msg}`);
  }

  /** Stops timers and connections; the peer's Redis keeps its state for a resume. */
  async close(): Promise<void> {
    this.closing = true;
    this.stopHeartbeat?.();
    this.actor?.stop();
    await this.inbox?.stop();
    await this.links.close();
    await this.direct.close();
    if (this.local) await closeRedis(this.local);
  }
}

