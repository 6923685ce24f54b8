import { describe, expect, it } from 'vitest';
import { toPromise } from 'xstate';
import { startRoundActor, type RoundWork } from './round-machine.ts';

/** A RoundWork that records the phases it is asked to run (the machine only sequences). */
function recorder(opts: { stopAtCheck?: number; failAt?: string; limit?: number } = {}) {
  const calls: string[] = [];
  let leaving = false, left = false;
  const phase = (name: string) => async (round: number) => {
    calls.push(`${round}:${name}`);
    if (opts.failAt === `${round}:${name}`) throw new Error(`boom in ${name}`);
    if (name === 'verify') left = leaving;
  };
  const work: RoundWork = {
    prepare: phase('prepare'), compute: phase('compute'), average: phase('average'), exchange: phase('exchange'),
    aggregate: phase('aggregate'), update: phase('update'), verify: phase('verify'),
    check: async (round) => { calls.push(`${round}:check`); return opts.stopAtCheck === round ? 'converged' : null; },
    limitReached: (round) => (round + 1 >= (opts.limit ?? 1_000) ? 'limit' : null),
    left: () => left,
  };
  return { calls, work, leave: () => { leaving = true; } };
}

describe('round state machine', () => {
  it('runs the phases in order and checks convergence every checkEvery rounds', async () => {
    const { calls, work } = recorder({ limit: 4 });
    const actor = startRoundActor(work, 0, 2);
    await toPromise(actor);
    const round1 = calls.filter((c) => c.startsWith('1:'));
    expect(round1).toEqual(['1:prepare', '1:compute', '1:average', '1:exchange', '1:aggregate', '1:update', '1:verify', '1:check']);
    expect(calls.filter((c) => c.endsWith(':check'))).toEqual(['1:check', '3:check']);
    expect(actor.getSnapshot().value).toBe('done');
    expect(actor.getSnapshot().context.stopReason).toBe('limit');
  });

  it('stops when the check says converged', async () => {
    const { calls, work } = recorder({ stopAtCheck: 9 });
    const actor = startRoundActor(work, 0, 10);
    await toPromise(actor);
    expect(actor.getSnapshot().context).toMatchObject({ round: 9, stopReason: 'converged' });
    expect(calls.at(-1)).toBe('9:check');
  });

  it('starts at a resumed round', async () => {
    const { calls, work } = recorder({ limit: 6 });
    await toPromise(startRoundActor(work, 5, 10));
    expect(calls[0]).toBe('5:prepare');
  });

  it('started past the round limit (a run resumed after it ended), it runs nothing and ends at the last round', async () => {
    const { calls, work } = recorder({ limit: 6 });
    const actor = startRoundActor(work, 6, 10);
    await toPromise(actor);
    expect(calls).toEqual([]);
    expect(actor.getSnapshot().value).toBe('done');
    expect(actor.getSnapshot().context).toMatchObject({ round: 5, stopReason: 'limit' });
  });

  it('ends in failed with the error of the failing phase', async () => {
    const { calls, work } = recorder({ failAt: '2:exchange' });
    const actor = startRoundActor(work, 0, 10);
    await toPromise(actor);
    expect(actor.getSnapshot().value).toBe('failed');
    expect(actor.getSnapshot().context.error).toBe('boom in exchange');
    expect(actor.getSnapshot().context.errorName).toBe('Error');
    expect(calls.at(-1)).toBe('2:exchange');
  });

  it('leaves at the next round boundary', async () => {
    const { calls, work, leave } = recorder();
    const actor = startRoundActor(work, 0, 10);
    leave();
    actor.send({ type: 'LEAVE' });
    await toPromise(actor);
    expect(actor.getSnapshot().value).toBe('left');
    expect(calls.at(-1)).toBe('0:verify');
  });
});
