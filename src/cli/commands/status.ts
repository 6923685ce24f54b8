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
  const rows = await readNetworkStatus(url, password);
  process.stdout.write(json ? `${JSON.stringify({ peers: rows }, null, 2)}\n` : `${renderStatus(rows)}\n`);
  return rows;
}

/**
 * `peerless status --watch`: the same, read again every `everyMs` until SIGINT/SIGTERM. On a
 * terminal the table is redrawn in place under the time it was read; otherwise (or with
 * --json) each reading is appended: a table under its time, or one JSON object a line.
 */
export async function watchNetworkStatus(url: string, password: string | undefined, json: boolean, everyMs: number): Promise<void> {
  let stopped = false;
  let wake: () => void = () => {};
  const stop = () => { stopped = true; wake(); };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const tty = process.stdout.isTTY && !json;
  try {
    while (!stopped) {
      const rows = await readNetworkStatus(url, password);
      const at = new Date().toISOString();
      if (json) process.stdout.write(`${JSON.stringify({ at, peers: rows })}\n`);
      else process.stdout.write(`${tty ? '\x1b[H\x1b[2J' : ''}${at} (every ${everyMs / 1000} s; Ctrl-C stops)\n${renderStatus(rows)}\n${tty ? '' : '\n'}`);
      await new Promise<void>((r) => { wake = r; setTimeout(r, everyMs); });
    }
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}

/** Every member's row, read from the peers' own Redis servers (entry: `url`). */
export async function readNetworkStatus(url: string, password: string | undefined): Promise<NetworkStatusRow[]> {
  const as = (u: string) => ({ url: u, ...(password ? credentialsFor('observer', password) : {}) });
  const entry = await connectRedis(as(url));
  const rows: NetworkStatusRow[] = [];
  try {
    if (!(await readPlan(entry))) throw new Error(`${url} holds no Peerless network (no ${K.config})`);
    const round = Number((await entry.get(K.round)) ?? 0);
    for (const m of await new Membership(entry).all()) {
      let c: Redis | null = null;
      try {
        // A few seconds: a busy member's Redis still answers within them; a member that does
        // not is shown unreachable, at that cost to the whole reading.
        c = m.url === url ? entry : await connectRedis(as(m.url), { connectTimeoutMs: 5_000 });
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
  return rows;
}

/** The rows as a table for people. */
export function renderStatus(rows: NetworkStatusRow[]): string {
  return table(
    ['peer', 'redis', 'member', 'round', 'phase', 'loss', 'validation', 'heartbeat'],
    rows.map((r) => [
      r.id, r.url, r.reachable ? r.member : `${r.member} (unreachable)`, r.state?.round ?? r.round ?? '-', r.state?.phase ?? '-',
      r.state?.loss?.toFixed(4) ?? '-', r.state?.validationAccuracy != null ? `${(r.state.validationAccuracy * 100).toFixed(2)}%` : '-',
      r.heartbeatAgeMs === null ? '-' : `${formatMs(r.heartbeatAgeMs)} ago`,
    ]),
  );
}
