import { credentialsFor } from '../../peer/net/access.ts';
import { K } from '../../peer/net/keys.ts';
import { Membership } from '../../peer/net/membership.ts';
import { readPlan } from '../../peer/plan.ts';
import type { RoundPoint } from '../../peer/round-log.ts';
import type { PeerStatus } from '../../peer/types.ts';
import { totalRounds } from '../../config/training.ts';
import { closeRedis, connectionCause, connectRedis, type Redis } from '../../tensor/redis-client.ts';
import { startDashboard, type Dashboard } from '../dashboard/server.ts';

/** How often each peer's status and the membership are read again. */
const POLL_MS = 500;

export interface AttachedDashboard {
  dashboard: Dashboard;
  /** Stops following the peers and closes the page's server. */
  stop(): Promise<void>;
}

/**
 * `peerless dashboard --redis URL`: the live dashboard of a running network, attached through
 * any one peer's Redis (as `peerless status` reads it, and as the read-only observer when a
 * password is given). It follows every member: its status (K.state) and its round log (the
 * capped stream each peer keeps, read from the start then as it grows), and says in the log
 * when members join, leave or cannot be reached.
 */
export async function attachDashboard(o: { redis: string; password?: string; port?: number }): Promise<AttachedDashboard> {
  const as = (url: string) => ({ url, ...(o.password ? credentialsFor('observer', o.password) : {}) });
  const entry = await connectRedis(as(o.redis));
  const plan = await readPlan(entry).catch(() => null);
  if (!plan) {
    await closeRedis(entry);
    throw new Error(`${o.redis} holds no Peerless network (no ${K.config}): give the Redis of a peer of a running network`);
  }
  const dashboard = await startDashboard({ port: o.port }).catch(async (err: Error) => { await closeRedis(entry); throw err; });
  dashboard.plan(totalRounds(plan.config, plan.roundsPerEpoch));
  let running = true;
  const followed = new Map<string, Promise<void>>();

  /** One member: its round log from the start, then as it grows, and its status. */
  const follow = async (id: string, url: string) => {
    let client: Redis | null = null, last = '0-0', state = '', unreachable = false;
    while (running) {
      try {
        // A connection of its own: XREAD BLOCK holds it while it waits.
        client ??= await connectRedis(as(url), { connectTimeoutMs: 2_000 });
        const read = await client.sendCommand(['XREAD', 'COUNT', '1000', 'BLOCK', String(POLL_MS), 'STREAMS', K.roundLog, last]) as [string, [string, string[]][]][] | null;
        for (const [, entries] of read ?? []) {
          for (const [entryId, fields] of entries) {
            last = entryId;
            dashboard.round(JSON.parse(fields[1]) as RoundPoint);
          }
        }
        const now = await client.get(K.state);
        if (now && now !== state) {
          state = now;
          dashboard.status(JSON.parse(now) as PeerStatus);
        }
        if (unreachable) dashboard.log(`${id} at ${url} is reachable again`);
        unreachable = false;
      } catch (err) {
        if (!running) break;
        if (!unreachable) dashboard.log(`${id} at ${url} cannot be reached (${connectionCause(err as Error)}); trying again`);
        unreachable = true;
        if (client) void closeRedis(client);
        client = null;
        await new Promise((r) => setTimeout(r, POLL_MS));
      }
    }
    if (client) await closeRedis(client);
  };

  /** The members as the entry peer records them: new ones are followed, changes are logged. */
  const members = new Membership(entry);
  const known = new Map<string, boolean>();
  const watchMembers = async () => {
    while (running) {
      try {
        for (const m of await members.all()) {
          const gone = m.leftAt !== undefined;
          if (known.get(m.id) !== gone) {
            dashboard.log(gone ? `${m.id} left at round ${m.leftAt}` : `${m.id} ${known.has(m.id) ? 'rejoined' : 'is a member'} (from round ${m.fromRound})`);
          }
          known.set(m.id, gone);
          if (!followed.has(m.id)) followed.set(m.id, follow(m.id, m.url));
        }
      } catch (err) {
        if (running) dashboard.log(`the membership at ${o.redis} cannot be read (${connectionCause(err as Error)}); trying again`);
      }
      await new Promise((r) => setTimeout(r, POLL_MS * 4));
    }
  };
  const watching = watchMembers();

  return {
    dashboard,
    async stop() {
      running = false;
      await watching;
      await Promise.all(followed.values());
      await dashboard.close();
      await closeRedis(entry);
    },
  };
}
