import { K } from '../../peer/net/keys.ts';
import { credentialsFor } from '../../peer/net/access.ts';
import { readPlan } from '../../peer/plan.ts';
import { Membership, isActive } from '../../peer/net/membership.ts';
import type { PeerStatus } from '../../peer/types.ts';
import { closeRedis, connectRedis, type Redis } from '../../tensor/redis-client.ts';
import { formatMs, table } from '../format.ts';

export interface NetworkStatusRow {
  id: string;
  url: string;
  member: 'active' | 'joining' | 'left';
  reachable: boolean;
  state: PeerStatus | null;
  heartbeatAgeMs: number | null;
  round: number | null;
}

/**
 * `peerless status`: where every peer of a network is, read from the peers' own Redis
 * servers, starting from any one of them. With the network password it logs in as the
 * read-only observer (src/peer/net/access.ts): looking never changes anything.
 */
export async function networkStatus(url: string, password: string | undefined, json: boolean): Promise<NetworkStatusRow[]> {
  const as = (u: string) => ({ url: u, ...(password ? credentialsFor('observer', password) : {}) });
  const entry = await connectRedis(as(url));
  const rows: NetworkStatusRow[] = [];
  try {
    if (!(await readPlan(entry))) throw new Error(`${url} holds no Peerless network (no ${K.config})`);
    const round = Number((await entry.get(K.round)) ?? 0);
    for (const m of await new Membership(entry).all()) {
      let c: Redis | null = null;
      try {
        c = m.url === url ? entry : await connectRedis(as(m.url), { connectTimeoutMs: 1_000 });
        const [state, hb, r] = await Promise.all([c.get(K.state), entry.get(K.heartbeat(m.id)), c.get(K.round)]);
        rows.push({
          id: m.id, url: m.url, member: isActive(m, round) ? 'active' : m.leftAt !== undefined ? 'left' : 'joining', reachable: true,
          state: state ? (JSON.parse(state) as PeerStatus) : null, heartbeatAgeMs: hb ? Date.now() - Number(hb) : null, round: r === null ? null : Number(r),
        });
      } catch {
        rows.push({ id: m.id, url: m.url, member: m.leftAt !== undefined ? 'left' : 'active', reachable: false, state: null, heartbeatAgeMs: null, round: null });
      } finally {
        if (c && c !== entry) await closeRedis(c);
      }
    }
  } finally {
    await closeRedis(entry);
  }
  if (json) process.stdout.write(`${JSON.stringify({ peers: rows }, null, 2)}\n`);
  else {
    process.stdout.write(`${table(
      ['peer', 'redis', 'member', 'round', 'phase', 'loss', 'validation', 'heartbeat'],
      rows.map((r) => [
        r.id, r.url, r.reachable ? r.member : `${r.member} (unreachable)`, r.state?.round ?? r.round ?? '-', r.state?.phase ?? '-',
        r.state?.loss?.toFixed(4) ?? '-', r.state?.validationAccuracy != null ? `${(r.state.validationAccuracy * 100).toFixed(2)}%` : '-',
        r.heartbeatAgeMs === null ? '-' : `${formatMs(r.heartbeatAgeMs)} ago`,
      ]),
    )}\n`);
  }
  return rows;
}
