import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseTrainingConfig } from '../../src/config/training.ts';
import { requestStop } from '../../src/peer/net/stop.ts';
import { LocalPlatform } from '../../src/platform/local/local-platform.ts';
import { TestNetwork } from '../training/in-process-network.ts';

/**
 * A peer's Redis dies mid-round (SIGKILL, chosen by the peer's own phase events). The peer
 * says so at once, naming the address and the cause; the others drop it at their deadline and
 * finish identical. A Redis that comes back empty is noticed (no identity) and the peer
 * rejoins by state copy. In-process peers on real redis-servers and the real local platform.
 */
/**
 * Each test waits out about one deadline (the drop of the dead peer, its own giving up), so
 * it is what a loaded machine needs, not less: at 3 s, the function deadline (half of it) let
 * a survivor's calls, queued on 2 workers at load 15, miss it and sit rounds out.
 */
const DEADLINE_MS = 15_000;
const config = parseTrainingConfig({
  model: { name: 'cnn', width: 0.25 }, dataset: 'synthetic', syntheticSize: 1536, batchSize: 32, batchesPerRound: 1,
  epochs: 1000, checkEvery: 1000, validationSize: 0, optimizer: { kind: 'adam', lr: 0.003 }, seed: 9, deadlineMs: DEADLINE_MS,
});

let platform: LocalPlatform;
let net: TestNetwork;

beforeAll(async () => {
  platform = new LocalPlatform({ workers: 2 });
  await platform.warm();
});
afterAll(async () => { await platform?.close(); });
afterEach(async () => { await net?.dispose(); });

describe("a peer's Redis dies", () => {
  it('the peer says so naming the address and cause, the others drop it and finish identical', async () => {
    net = new TestNetwork(config, platform);
    const peers = await net.foundingGroup(3);
    const url = net.servers[2].url;
    await net.phase(peers[2], 'exchanging', 2);
    await net.killServer(2);
    const said = await net.log(peers[2], /its Redis at .* is unreachable/);
    expect(said).toMatch(new RegExp(`p02: its Redis at ${url} is unreachable \\((ECONNRESET|ECONNREFUSED|Socket closed|.*closed).*\\)`));
    const dropped = Number(/p02 dropped from round (\d+)/.exec(await net.log(peers[0], /p02 dropped from round \d+/))![1]);
    // Stop once a round without p02 counted both others. On a loaded machine p01 can sit a round
    // out itself (its calls missed the function deadline) and be readmitted later: a stop before
    // that left it outside, ending "failed" (a repeated run did).
    await new Promise<void>((resolve) => {
      const hit = (m: { round: number; members: string[] }) => {
        if (m.round >= dropped && m.members.join() === 'p00,p01') { peers[0].peer.off('round', hit); resolve(); }
      };
      peers[0].peer.on('round', hit);
    });
    await requestStop(net.clients.slice(0, 2));
    const [a, b, c] = await Promise.all(peers.map((p) => p.outcome!));
    expect([a.state, b.state], peers.map((p) => p.logs.join('\n')).join('\n')).toEqual(['done', 'done']);
    expect(a.checksum).toBe(b.checksum);
    expect(c.state).toBe('failed');
    expect(c.error).toMatch(new RegExp(`^peer p02: its Redis at ${url} is unreachable \\(.+\\); gave up after ${DEADLINE_MS} ms$`));
    await net.close(peers);
  });

  it('comes back empty: the peer notices the lost state, stores its data again, rejoins by state copy, ends identical', async () => {
    net = new TestNetwork(config, platform);
    const peers = await net.foundingGroup(3);
    await net.phase(peers[1], 'aggregating', 2);
    await net.killServer(1);
    await net.restartServerEmpty(1);
    await net.log(peers[1], /came back without its state; storing its data again and rejoining by state copy/);
    const from = Number(/from round (\d+)/.exec(await net.log(peers[1], /joined through/))![1]);
    // Once a round after its return counts all three, stop the network together.
    await new Promise<void>((resolve) => {
      const hit = (m: { round: number; members: string[] }) => { if (m.round > from && m.members.length === 3) { peers[0].peer.off('round', hit); resolve(); } };
      peers[0].peer.on('round', hit);
    });
    const outcomes = await net.stop(peers);
    expect(outcomes.map((o) => o.state), peers.map((p) => p.logs.join('\n')).join('\n')).toEqual(['done', 'done', 'done']);
    expect(new Set(outcomes.map((o) => o.checksum)).size).toBe(1);
    await net.close(peers);
  });
});
