import { EventEmitter } from 'node:events';
import { parseTrainingConfig, type TrainingConfig } from '../config/training.ts';
import { InDbTensorStore } from '../tensor/in-db.ts';
import { closeRedis, connectRedis, type Redis } from '../tensor/redis-client.ts';
import { Inbox } from './inbox.ts';
import { K } from './keys.ts';
import { PeerLinks } from './links.ts';
import { Membership, type MemberRecord } from './membership.ts';
import { startRoundActor, type RoundActor } from './round-machine.ts';
import { RoundRunner } from './round-work.ts';
import { copyTrainingState } from './state-copy.ts';
import type { PeerOptions, PeerOutcome, PeerStatus, RoundMetrics } from './types.ts';

/** What the founding peer stores next to the configuration: the plan every peer follows. */
export interface NetworkPlan {
  config: TrainingConfig;
  roundsPerEpoch: number;
  layoutHash: string;
  length: number;
}

/** The network's plan kept in a peer's Redis, or null where no network is. */
export async function readPlan(client: Redis): Promise<NetworkPlan | null> {
  const raw = await client.get(K.config);
  return raw ? (JSON.parse(raw) as NetworkPlan) : null;
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
  private membership!: Membership;
  private plan!: NetworkPlan;
  private actor?: RoundActor;
  private heartbeat?: NodeJS.Timeout;
  private runner?: RoundRunner;
  private startRound = 0;

  constructor(private readonly opts: PeerOptions) {
    super();
    this.id = opts.id;
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(opts.id)) throw new Error(`peer id "${opts.id}" must be 1-64 letters, digits, '.', '_' or '-'`);
    this.links = new PeerLinks(opts.networkPassword);
  }

  get url(): string {
    return this.opts.advertiseUrl ?? this.opts.redis.url;
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
    this.local = await connectRedis(this.opts.redis, { name: `peerless-${this.id}` });
    this.store = new InDbTensorStore(this.local);
    this.membership = new Membership(this.local);
    this.inbox = new Inbox(this.local);
    await this.inbox.start();

    const existing = await readPlan(this.local);
    if (existing) await this.resume(existing);
    else if (this.opts.found) await this.found();
    else if (this.opts.bootstrap) await this.join(this.opts.bootstrap.url, this.opts.bootstrap.fromRound);
    else throw new Error(`peer ${this.id}: no network state in ${this.opts.redis.url}, and neither a configuration to found one nor a bootstrap address to join`);

    this.checkModel();
    this.startHeartbeat();
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
    this.plan = { config, roundsPerEpoch: f.roundsPerEpoch, layoutHash: this.opts.model.layoutHash, length: this.opts.model.length };
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
    this.log(`founded the network (model ${config.model.name}, ${this.plan.length} params, layout ${this.plan.layoutHash})`);
  }

  /**
   * Joins through any live peer: takes the network's configuration, registers with every
   * member for a round boundary two rounds ahead (so no member is mid-way through that
   * round), waits for the bootstrap peer to finish the round before it, and copies the
   * parameters, optimizer state and progress from it.
   */
  private async join(bootstrapUrl: string, fromRound?: number): Promise<void> {
    const boot = await this.links.client(bootstrapUrl).catch((err: Error) => {
      throw new Error(`peer ${this.id}: bootstrap peer ${bootstrapUrl} does not answer: ${err.message}`);
    });
    const plan = await readPlan(boot);
    if (!plan) throw new Error(`peer ${this.id}: ${bootstrapUrl} holds no Peerless network (no ${K.config})`);
    this.plan = plan;
    this.checkModel();

    const bootMembers = new Membership(boot);
    const members = await bootMembers.all();
    const bootRound = Number((await boot.get(K.round)) ?? 0);
    const start = fromRound ?? bootRound + 2;
    const clash = members.find((m) => m.id === this.id && m.leftAt === undefined && m.url !== this.url);
    if (clash) throw new Error(`peer ${this.id}: the id is already taken by the live member at ${clash.url}`);

    const me = this.record(start);
    await this.local.del(K.members);
    for (const m of members) if (m.id !== this.id) await this.membership.put(m);
    await this.membership.put(me);
    await Promise.all(
      members.filter((m) => m.id !== this.id && m.leftAt === undefined).map(async (m) => {
        const c = await this.links.client(m.url);
        await c.hSet(K.members, this.id, JSON.stringify(me));
        await c.publish(K.inbox, `members:${this.id}`);
      }),
    );

    // Wait until the bootstrap peer has applied the update of round start-1.
    const deadline = Date.now() + this.plan.config.deadlineMs * 4;
    while (Number((await boot.get(K.round)) ?? 0) < start) {
      const state = await boot.get(K.state);
      const phase = state ? (JSON.parse(state) as PeerStatus).phase : null;
      if (phase === 'done' || phase === 'failed' || phase === 'left') {
        throw new Error(`peer ${this.id}: the network ended (bootstrap peer ${bootstrapUrl} is ${phase}) before round ${start}, when this peer would have joined`);
      }
      if (Date.now() > deadline) throw new Error(`peer ${this.id}: bootstrap peer ${bootstrapUrl} did not reach round ${start}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    await copyTrainingState(boot, this.local);
    await this.local.multi().set(K.layout, this.plan.layoutHash).set(K.round, String(start)).set(K.config, JSON.stringify(this.plan)).exec();
    this.startRound = start;
    this.log(`joined through ${bootstrapUrl} from round ${start} (${members.length} members before)`);
  }

  /** Restarts from the state kept in this peer's Redis: the round in progress is run again. */
  private async resume(plan: NetworkPlan): Promise<void> {
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
      await this.membership.put({ ...mine, leftAt: undefined });
      await this.local.del(K.state);
      await this.join(other.url);
      return;
    }
    this.log(`resumed at round ${this.startRound}`);
  }

  private startHeartbeat(): void {
    const every = this.opts.heartbeatMs ?? 1_000;
    const beat = async () => {
      try {
        const members = await this.membership.activeAt(this.actor?.getSnapshot().context.round ?? this.startRound);
        const now = String(Date.now());
        await Promise.allSettled(members.map(async (m) => {
          const c = m.id === this.id ? this.local : await this.links.client(m.url);
          await c.set(K.heartbeat(this.id), now, { PX: every * 10 });
        }));
      } catch {
        // A missed heartbeat is not an error: the round deadline decides who is gone.
      }
    };
    void beat();
    this.heartbeat = setInterval(beat, every);
    this.heartbeat.unref();
  }

  /** Runs rounds until the network stops, this peer leaves, or a phase fails. */
  async run(): Promise<PeerOutcome> {
    this.runner = new RoundRunner({
      id: this.id,
      me: () => this.record(this.startRound),
      plan: this.plan,
      local: this.local,
      store: this.store,
      inbox: this.inbox,
      links: this.links,
      membership: this.membership,
      platform: this.opts.platform,
      data: this.opts.data,
      model: this.opts.model,
      redis: { url: this.url, password: this.opts.redis.password },
      emitRound: (m: RoundMetrics) => this.emit('round', m),
      log: (msg: string) => this.log(msg),
    });
    const actor = startRoundActor(this.runner, this.startRound, this.plan.config.checkEvery);
    this.actor = actor;
    return new Promise<PeerOutcome>((resolve) => {
      const sub = actor.subscribe((snap) => {
        const status = this.status();
        void this.local.set(K.state, JSON.stringify(status)).catch(() => {});
        this.emit('status', status);
        if (snap.status === 'done') {
          sub.unsubscribe();
          void this.finish(snap.value as 'done' | 'left' | 'failed').then(resolve);
        }
      });
    });
  }

  private async finish(state: 'done' | 'left' | 'failed'): Promise<PeerOutcome> {
    const ctx = this.actor!.getSnapshot().context;
    if (state === 'left') await this.announceLeave(ctx.round + 1);
    const checksum = await this.store.checksum(K.params).catch(() => null);
    return { id: this.id, state, rounds: ctx.round + 1, stopReason: ctx.stopReason, error: ctx.error, checksum };
  }

  /** Tells every member that this peer is gone from `round` on. */
  private async announceLeave(round: number): Promise<void> {
    const members = await this.membership.all();
    const me = members.find((m) => m.id === this.id);
    if (!me) return;
    const gone = JSON.stringify({ ...me, leftAt: round });
    await Promise.allSettled(members.map(async (m) => {
      const c = m.id === this.id ? this.local : await this.links.client(m.url);
      await c.hSet(K.members, this.id, gone);
    }));
    this.log(`left the network after round ${round - 1}`);
  }

  /** Asks the peer to leave cleanly at the next round boundary. */
  leave(): void {
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
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.actor?.stop();
    await this.inbox?.stop();
    await this.links.close();
    if (this.local) await closeRedis(this.local);
  }
}

