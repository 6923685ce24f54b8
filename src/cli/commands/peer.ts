import type { TrainingConfig } from '../../config/training.ts';
import { fitRounds, roundsPerEpoch } from '../../config/training.ts';
import { prepareModel, preparePeerData } from '../../cluster/training-setup.ts';
import { Peer } from '../../peer/peer.ts';
import { readPlan } from '../../peer/plan.ts';
import type { PeerOutcome, RoundMetrics } from '../../peer/types.ts';
import type { Phase } from '../../peer/round-machine.ts';
import type { FunctionPlatform } from '../../platform/platform.ts';
import { credentialsFor } from '../../peer/net/access.ts';
import { createLog, type Log } from '../log.ts';
import { stopAtBoundary } from '../signals.ts';
import { closeRedis, connectRedis, type Redis } from '../../tensor/redis-client.ts';

export interface PeerCliOptions {
  id: string;
  redis: string;
  advertise?: string;
  password?: string;
  bootstrap?: string;
  shard: { index: number; count: number };
  config: TrainingConfig;
  platform: FunctionPlatform;
  json?: boolean;
  /** Where its log lines go (src/cli/log.ts): plain lines by default. */
  log?: Log;
}

/**
 * Logs in to a bootstrap peer's Redis as the peers' user. A founder starting at the same time
 * may not have created that user yet, so refused credentials are asked again until `end`.
 */
async function enter(url: string, secret: string | undefined, end: number): Promise<Redis> {
  for (;;) {
    try {
      return await connectRedis({ url, ...(secret ? credentialsFor('peers', secret) : {}) });
    } catch (err) {
      const msg = (err as Error).message;
      if (!/refused the credentials/.test(msg) || Date.now() > end) throw new Error(`bootstrap peer ${url} does not answer: ${msg}${/refused the credentials/.test(msg) ? ' (is --password the network\'s secret?)' : ''}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

/**
 * The configuration of the network a joiner enters. The founder may still be starting (peers
 * of a network are often launched together), so an empty bootstrap Redis is waited for; an
 * unreachable one is an error at once.
 */
async function networkConfig(url: string, secret: string | undefined, waitMs = 60_000): Promise<TrainingConfig> {
  const end = Date.now() + waitMs;
  const boot = await enter(url, secret, end);
  try {
    for (;;) {
      const plan = await readPlan(boot);
      if (plan) return plan.config;
      if (Date.now() > end) throw new Error(`${url} holds no Peerless network (waited ${waitMs / 1000} s for its founder)`);
      await new Promise((r) => setTimeout(r, 250));
    }
  } finally {
    await closeRedis(boot);
  }
}

/**
 * PEERLESS_TEST_PAUSE_AT=phase:round (the fault tests and `bench kills` only): the first time
 * the peer is about to start that phase in that round or a later one, it says so and waits
 * there until SIGUSR2, so a test can kill it, or its Redis, at a phase chosen by the peer's own
 * event rather than by a timer. With `phase:armed` it pauses the first time it reaches the
 * phase after a SIGUSR1: when the caller has seen the network settle (every member in it for
 * some rounds), whatever round that is.
 */
function pauseForFaultTests(id: string): { beforePhase?: (phase: Phase, round: number) => Promise<void> } {
  const at = process.env.PEERLESS_TEST_PAUSE_AT;
  if (!at) return {};
  const [phase, round] = at.split(':');
  let armed = round !== 'armed';
  // `on`, not `once`: a listener kept makes a second SIGUSR1 harmless, where the default ends the process.
  if (!armed) process.on('SIGUSR1', () => { armed = true; });
  let done = false;
  return {
    beforePhase: async (p, r) => {
      if (done || !armed || p !== phase || (round !== 'armed' && r < Number(round))) return;
      done = true;
      const resumed = new Promise<void>((resolve) => process.once('SIGUSR2', () => resolve()));
      process.stderr.write(`${id}: paused before ${p} of round ${r} (PEERLESS_TEST_PAUSE_AT; SIGUSR2 resumes)\n`);
      await resumed;
      process.stderr.write(`${id}: resumed before ${p} of round ${r}\n`);
    },
  };
}

/**
 * `peerless peer`: one peer against a Redis the user runs (with the module loaded), for
 * networks across machines. Without --bootstrap it founds a network with the given
 * configuration; with it, it joins the network of that Redis and takes its configuration.
 * Ctrl-C leaves cleanly at the next round boundary; SIGTERM (or a second Ctrl-C) quits at once.
 */
export async function runPeer(o: PeerCliOptions): Promise<PeerOutcome> {
  const log = o.log ?? createLog();
  // This Redis's own password: the one in --redis (redis://:PASSWORD@host:port), else the
  // network secret, which then opens it as owner to every peer that holds the secret.
  const ownPassword = new URL(o.redis).password !== '';
  if (o.password && !ownPassword) {
    log.warn(`${o.id}: its Redis's password is the network secret (--password), so every peer holding it can act as this Redis's owner: give the Redis a password of its own in --redis (redis://:PASSWORD@host:port)`);
  }
  const location = { url: o.redis, password: ownPassword ? undefined : o.password };
  const client = await connectRedis(location);
  let config = o.config;
  try {
    // A joining peer trains with the network's configuration, not its own flags.
    // A peer restarted on its own Redis resumes with the network's configuration kept there;
    // a joiner takes the network's from its bootstrap peer; only a founder uses its flags.
    const own = await readPlan(client);
    if (own) config = own.config;
    else if (o.bootstrap) config = await networkConfig(o.bootstrap, o.password);
    else if (config.backend === 'auto' && o.platform.computeBackend) {
      // A founder fixes the backend its functions loaded (see TrainingConfig.backend).
      config = { ...config, backend: o.platform.computeBackend as typeof config.backend };
    }
    const model = await prepareModel(config);
    const data = await preparePeerData(client, config, o.shard, { storeTest: false, skipIfStored: true });
    if (!own && !o.bootstrap) {
      // A founder's explicit round count runs that many rounds (fitRounds).
      const fitted = fitRounds(config, data.batches);
      config = fitted.config;
      if (fitted.note) log.info(`${o.id}: ${fitted.note}`);
    }
    const peer = new Peer({
      id: o.id,
      redis: location,
      advertiseUrl: o.advertise,
      networkPassword: o.password,
      platform: o.platform,
      model: model.info,
      data,
      shard: o.shard,
      restoreData: async (c) => { await preparePeerData(c, config, o.shard, { storeTest: false, skipIfStored: false }); },
      ...pauseForFaultTests(o.id),
      ...(own || o.bootstrap
        ? (o.bootstrap ? { bootstrap: { url: o.bootstrap } } : {})
        : { found: { config, initialParams: model.initialParams, roundsPerEpoch: roundsPerEpoch(config, data.batches) } }),
    });
    peer.on('log', (m: string) => log.info(m));
    peer.on('round', (m: RoundMetrics) => {
      if (o.json) return;
      const val = m.validationAccuracy !== undefined ? `, validation ${(m.validationAccuracy * 100).toFixed(2)}%` : '';
      log.info(`${m.peer} round ${m.round}: ${m.members.length} peers, loss ${m.loss.toFixed(4)}${val}, ${m.roundMs.toFixed(0)} ms`,
        { round: m.round, members: m.members, loss: m.loss, validationAccuracy: m.validationAccuracy, roundMs: Math.round(m.roundMs), checksum: m.checksum });
    });
    // Ctrl-C: leave at the next round boundary, the others told (exit 130). A second Ctrl-C,
    // or SIGTERM, quits at once: the others drop this peer at their deadline.
    const unsubscribe = stopAtBoundary(() => {
      log.info(`${o.id}: leaving at the next round boundary (Ctrl-C again to quit at once)`);
      peer.leave();
    });
    await peer.start();
    const outcome = await peer.run();
    await peer.close();
    unsubscribe();
    if (o.json) process.stdout.write(`${JSON.stringify(outcome, null, 2)}\n`);
    else process.stdout.write(`${o.id}: ${outcome.state} after ${outcome.rounds} rounds${outcome.stopReason ? ` (${outcome.stopReason})` : ''}${outcome.error ? `: ${outcome.error}` : ''}; checksum ${outcome.checksum}\n`);
    return outcome;
  } finally {
    await closeRedis(client);
  }
}
