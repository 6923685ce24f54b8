import { describe, expect, it } from 'vitest';
import { parseTrainingConfig } from '../../src/config/training.ts';
import { K } from '../../src/peer/net/keys.ts';
import type { PeerOptions } from '../../src/peer/types.ts';
import { useTestNetwork } from './in-process-network.ts';

/**
 * A peer starts the next round's gradients as soon as its update is in, while the round's
 * membership agreement runs. When that agreement repairs the peer's parameters, the gradients
 * started on the wrong ones must not count: the run must end as a clean run does. In-process
 * peers on real redis-servers and the real local platform of worker threads.
 */
const config = parseTrainingConfig({
  model: { name: 'cnn', width: 0.25 }, dataset: 'synthetic', syntheticSize: 1024, batchSize: 32, batchesPerRound: 3,
  maxRounds: 8, epochs: 1000, checkEvery: 1000, validationSize: 0, optimizer: { kind: 'adam', lr: 0.003 }, seed: 7, deadlineMs: 30_000,
});

const network = useTestNetwork(config);

async function run(extra: (i: number) => Pick<PeerOptions, 'beforePhase'> = () => ({})) {
  const peers = await network().foundingGroup(2, extra);
  const outcomes = await Promise.all(peers.map((p) => p.outcome!));
  await network().close(peers);
  for (const [i, o] of outcomes.entries()) expect(o.state, `${o.error} ${peers[i].logs.join('\n')}`).toBe('done');
  return { peers, checksums: outcomes.map((o) => o.checksum) };
}

describe('gradients computed ahead', () => {
  it('are thrown away and computed again when the agreement repairs the parameters they started from', async () => {
    const clean = await run();
    expect(clean.checksums[1]).toBe(clean.checksums[0]);

    // Before p01's update of round 3, one of its parameters changes: the update, the next
    // round's gradients started ahead, and the round's checksum all start from it.
    const faulty = await run((i) => (i !== 1 ? {} : {
      beforePhase: async (phase, round) => {
        if (phase === 'updating' && round === 3) await network().clients[1].setRange(K.params, 0, Buffer.from(new Float32Array([12345]).buffer));
      },
    }));
    const [, p1] = faulty.peers;
    expect(p1.rounds.find((m) => m.round === 3)?.repaired).toBe(true);
    expect(p1.logs.some((l) => /round 3: the gradients of round 4 computed ahead were on the repaired parameters/.test(l))).toBe(true);
    expect(faulty.checksums).toEqual(clean.checksums);
  });

  it('are still computed again when the peer restarts between the repair and its next round', async () => {
    const clean = await run();
    // p01's parameters go wrong before its update of round 3, as above; the agreement repairs
    // them, and p01 stops for good just before round 4's compute (the hook never returns).
    // Its gradients of round 4, started on the wrong parameters, are in its Redis.
    let stopped!: () => void;
    const atRound4 = new Promise<void>((resolve) => { stopped = resolve; });
    const peers = await network().foundingGroup(2, (i) => (i !== 1 ? {} : {
      beforePhase: async (phase, round) => {
        if (phase === 'updating' && round === 3) await network().clients[1].setRange(K.params, 0, Buffer.from(new Float32Array([12345]).buffer));
        if (phase === 'computing' && round === 4) { stopped(); await new Promise(() => {}); }
      },
    }));
    await atRound4;
    const [p0, first] = peers;
    expect(first.rounds.find((m) => m.round === 3)?.repaired).toBe(true);
    await first.peer.close();

    // A new process on the same Redis resumes round 4: it must not count those gradients.
    const again = await network().makePeer(1, 2, 'founding-group');
    await network().start(again);
    const outcomes = await Promise.all([p0.outcome!, again.outcome!]);
    await network().close([p0, again]);
    for (const [i, o] of outcomes.entries()) expect(o.state, `${o.error} ${[p0, again][i].logs.join('\n')}`).toBe('done');
    expect(again.logs.some((l) => /resumed at round 4/.test(l)), again.logs.join('\n')).toBe(true);
    expect(outcomes.map((o) => o.checksum)).toEqual(clean.checksums);
  });
});
