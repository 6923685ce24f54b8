import { describe, expect, it } from 'vitest';
import { parseTrainingConfig } from '../../src/config/training.ts';
import { K } from '../../src/peer/net/keys.ts';
import { requestStop } from '../../src/peer/net/stop.ts';
import { PROTOCOL, type NetworkPlan } from '../../src/peer/plan.ts';
import type { RoundMetrics } from '../../src/peer/types.ts';
import { useTestNetwork } from './in-process-network.ts';

/**
 * Exchange 'sharded-step' (ZeRO's first stage) while the members change: each owner keeps its
 * slice's momentum only, so every join and leave moves optimizer state between peers. In-process
 * peers on real redis-servers and the real local platform. The bytes of the moves are checked in
 * src/peer/round/sharded-step.spec.ts; here, that a changing network agrees every round, with
 * nothing lost or repaired.
 */
const config = parseTrainingConfig({
  model: { name: 'cnn', width: 0.25 }, dataset: 'synthetic', syntheticSize: 2048, batchSize: 32, batchesPerRound: 1,
  epochs: 1000, checkEvery: 1000, validationSize: 0, optimizer: { kind: 'sgd', lr: 0.05, momentum: 0.9 }, seed: 6, deadlineMs: 30_000,
  exchange: 'sharded-step',
});

const network = useTestNetwork(config);

describe('exchange "sharded-step" while members join and leave', () => {
  it('joins one per round, then a leave: every round agrees, and the momentum moves instead of being lost', async () => {
    const n = 5;
    await network().reset(n);
    const founder = await network().makePeer(0, n, 'found');
    await network().start(founder);
    const joiners = await Promise.all(Array.from({ length: n - 1 }, (_, k) => network().makePeer(k + 1, n, 'join')));
    await network().joinOnePerRound(founder, joiners);

    // p02 leaves; its Redis stays up, so its slice's momentum goes to the new owners.
    const leaver = joiners[1];
    const fewer = network().roundWith(founder, n - 1);
    leaver.peer.leave();
    const firstWithout = await fewer;
    expect((await leaver.outcome!).state).toBe('left');
    const stay = [founder, ...joiners.filter((j) => j !== leaver)];
    await Promise.all(stay.map((p) => new Promise<void>((resolve) => {
      const hit = (m: RoundMetrics) => { if (m.round > firstWithout) { p.peer.off('round', hit); resolve(); } };
      p.peer.on('round', hit);
    })));

    await requestStop(stay.map((p) => network().clients[Number(p.peer.id.slice(1))]));
    const outcomes = await Promise.all(stay.map((p) => p.outcome!));
    for (const [i, o] of outcomes.entries()) expect(o.state, `${o.error} ${stay[i].logs.join('\n')}`).toBe('done');
    expect(new Set(outcomes.map((o) => o.checksum)).size).toBe(1);
    // Nobody but the leaver went, and nothing needed a repair.
    for (const p of [...stay, leaver]) {
      expect(p.rounds.filter((m) => m.repaired || m.dropped.some((id) => id !== leaver.peer.id))).toEqual([]);
      expect(p.logs.filter((l) => /repairing|missed the|was lost with/.test(l) || (/dropped/.test(l) && !l.includes(`${leaver.peer.id} dropped`)))).toEqual([]);
    }
    // Every change of members moved state: each join and the leave.
    const moves = stay.flatMap((p) => p.logs.filter((l) => /the members changed; fetched the optimizer state of \d+ elements/.test(l)));
    expect(moves.length).toBeGreaterThanOrEqual(n);
    // Each peer records the layout its momentum is in: the last round's members.
    const layouts = await Promise.all(stay.map((p) => network().clients[Number(p.peer.id.slice(1))].get(K.optimizerLayout)));
    expect(new Set(layouts)).toEqual(new Set([JSON.stringify(stay.map((p) => p.peer.id))]));
    // Written with this Peerless's protocol (4 or later: a Peerless of 3 would run it as 'all').
    expect((JSON.parse(String(await network().clients[0].get(K.config))) as NetworkPlan).protocol).toBe(PROTOCOL);
    await network().close([...stay, leaver]);
  }, 600_000);
});
