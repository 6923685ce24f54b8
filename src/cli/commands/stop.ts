import { K } from '../../peer/net/keys.ts';
import { readPlan } from '../../peer/plan.ts';
import { Membership } from '../../peer/net/membership.ts';
import { requestStop } from '../../peer/net/stop.ts';
import { credentialsFor } from '../../peer/net/access.ts';
import { closeRedis, connectRedis } from '../../tensor/redis-client.ts';

/**
 * `peerless stop`: asks every peer of a network to stop after the same round, so all end
 * with identical parameters (a peer that merely leaves makes the others go on without it).
 * The round defaults to two past the furthest peer's, which every peer reads in time.
 */
export async function stopNetwork(url: string, password: string | undefined, atRound: number | undefined, json: boolean): Promise<{ round: number; peers: string[] }> {
  // As the other peers' user, which may write the stop request and nothing of a peer's state.
  const login = password ? credentialsFor('peers', password) : {};
  const entry = await connectRedis({ url, ...login });
  try {
    if (!(await readPlan(entry))) throw new Error(`${url} holds no Peerless network (no ${K.config})`);
    const members = (await new Membership(entry).all()).filter((m) => m.leftAt === undefined);
    const clients = await Promise.all(members.map((m) => (m.url === url ? entry : connectRedis({ url: m.url, ...login }))));
    try {
      const out = { round: await requestStop(clients, atRound), peers: members.map((m) => m.id) };
      process.stdout.write(json ? `${JSON.stringify(out)}\n` : `asked ${out.peers.join(', ')} to stop after round ${out.round}\n`);
      return out;
    } finally {
      await Promise.all(clients.filter((c) => c !== entry).map(closeRedis));
    }
  } finally {
    await closeRedis(entry);
  }
}
