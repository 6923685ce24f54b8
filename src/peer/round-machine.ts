import { assign, createActor, fromPromise, setup, type Actor } from 'xstate';

/** The phases of one round, in order; each is one state of the machine. */
export const PHASES = ['preparing', 'computing', 'averaging', 'exchanging', 'aggregating', 'updating', 'verifying', 'checking'] as const;
export type Phase = (typeof PHASES)[number];

/**
 * What a round does, phase by phase. The machine only sequences: the work lives in the peer.
 * Every phase is safe to run again after a crash (gradients are counted once per batch id,
 * exchanged tensors overwrite themselves, and the update is guarded by the round marker).
 */
export interface RoundWork {
  prepare(round: number): Promise<void>;
  /** Invoke one gradient function per batch of the round. */
  compute(round: number): Promise<void>;
  /** Wait for the in-database average that the last arrival triggers. */
  average(round: number): Promise<void>;
  exchange(round: number): Promise<void>;
  aggregate(round: number): Promise<void>;
  /** Optimizer step inside the database. */
  update(round: number): Promise<void>;
  /** Compare parameter checksums with the other peers; repair on mismatch. */
  verify(round: number): Promise<void>;
  /** Convergence check on held-out data; returns why to stop, or null to go on. */
  check(round: number): Promise<string | null>;
  /** A limit (rounds, epochs) that ends training after `round`, or null. */
  limitReached(round: number): string | null;
  /** Whether this peer's leave took effect at the end of the round (it is not in the next view). */
  left(): boolean;
  /** Runs before each phase's work (the fault tests pause a peer there to kill it). */
  beforePhase?(phase: Phase, round: number): Promise<void>;
}

/** The state each phase's work runs in. */
const STATE_OF = {
  prepare: 'preparing', compute: 'computing', average: 'averaging', exchange: 'exchanging', aggregate: 'aggregating',
  update: 'updating', verify: 'verifying', check: 'checking',
} as const satisfies Record<string, Phase>;

export interface RoundContext {
  round: number;
  checkEvery: number;
  stopReason: string | null;
  leaving: boolean;
  error: string | null;
  /** The failing error's name, so the peer can tell a drop (it rejoins) from a failure. */
  errorName: string | null;
}

const roundInput = ({ context }: { context: RoundContext }) => ({ round: context.round });
const fail = { target: 'failed', actions: 'recordError' } as const;
const errorMessage = (e: unknown) => (e instanceof Error ? e.message : String(e));

/**
 * The per-peer round state machine (XState v5):
 * (starting: done at once when a limit ended the round before) preparing -> computing -> averaging -> exchanging -> aggregating -> updating -> verifying
 * -> (every `checkEvery` rounds) checking -> next round, or done. A failure in any phase
 * ends in `failed` with the error; after LEAVE, the peer says so in its next round report
 * and ends when that round's view leaves it out.
 */
export function createRoundMachine(work: RoundWork) {
  const phase = (name: Exclude<keyof typeof STATE_OF, 'check'>) =>
    fromPromise<void, { round: number }>(async ({ input }) => {
      await work.beforePhase?.(STATE_OF[name], input.round);
      await work[name](input.round);
    });

  return setup({
    types: {
      context: {} as RoundContext,
      input: {} as { round: number; checkEvery: number },
      events: {} as { type: 'LEAVE' },
    },
    actors: {
      prepare: phase('prepare'),
      compute: phase('compute'),
      average: phase('average'),
      exchange: phase('exchange'),
      aggregate: phase('aggregate'),
      update: phase('update'),
      verify: phase('verify'),
      check: fromPromise<string | null, { round: number }>(async ({ input }) => {
        await work.beforePhase?.('checking', input.round);
        return work.check(input.round);
      }),
    },
    actions: {
      recordError: assign(({ event }) => {
        const error = (event as { error?: unknown }).error;
        return { error: errorMessage(error), errorName: error instanceof Error ? error.name : 'Error' };
      }),
    },
    guards: {
      isCheckRound: ({ context }) => (context.round + 1) % context.checkEvery === 0,
      shouldStop: ({ context }) => context.stopReason !== null,
      // LEAVE only asks: the peer is gone once the round's view left it out.
      isLeaving: () => work.left(),
      isPastLimit: ({ context }) => context.round > 0 && work.limitReached(context.round - 1) !== null,
    },
  }).createMachine({
    id: 'round',
    context: ({ input }) => ({ round: input.round, checkEvery: input.checkEvery, stopReason: null, leaving: false, error: null, errorName: null }),
    initial: 'starting',
    on: { LEAVE: { actions: assign({ leaving: true }) } },
    states: {
      // A peer resumed after the run's last round (killed while it ended, say) has nothing to
      // run: it ends as the run did, at its last round, instead of training one round more.
      starting: {
        always: [
          {
            guard: 'isPastLimit', target: 'done',
            actions: assign(({ context }) => ({ round: context.round - 1, stopReason: work.limitReached(context.round - 1) })),
          },
          { target: 'preparing' },
        ],
      },
      preparing: { invoke: { src: 'prepare', input: roundInput, onDone: 'computing', onError: fail } },
      computing: { invoke: { src: 'compute', input: roundInput, onDone: 'averaging', onError: fail } },
      averaging: { invoke: { src: 'average', input: roundInput, onDone: 'exchanging', onError: fail } },
      exchanging: { invoke: { src: 'exchange', input: roundInput, onDone: 'aggregating', onError: fail } },
      aggregating: { invoke: { src: 'aggregate', input: roundInput, onDone: 'updating', onError: fail } },
      updating: { invoke: { src: 'update', input: roundInput, onDone: 'verifying', onError: fail } },
      verifying: {
        invoke: {
          src: 'verify',
          input: roundInput,
          onDone: [{ guard: 'isCheckRound', target: 'checking' }, { target: 'deciding' }],
          onError: fail,
        },
      },
      checking: {
        invoke: {
          src: 'check',
          input: roundInput,
          onDone: { target: 'deciding', actions: assign({ stopReason: ({ event }) => event.output }) },
          onError: fail,
        },
      },
      deciding: {
        entry: assign({ stopReason: ({ context }) => context.stopReason ?? work.limitReached(context.round) }),
        always: [
          { guard: 'shouldStop', target: 'done' },
          { guard: 'isLeaving', target: 'left' },
          { target: 'preparing', actions: assign({ round: ({ context }) => context.round + 1 }) },
        ],
      },
      done: { type: 'final' },
      left: { type: 'final' },
      failed: { type: 'final' },
    },
  });
}

export type RoundMachine = ReturnType<typeof createRoundMachine>;
export type RoundActor = Actor<RoundMachine>;

/**
 * The machine at `round` (a resumed peer starts at the round its marker names), not started:
 * subscribe first, since a machine with nothing to run is done as it starts.
 */
export function createRoundActor(work: RoundWork, round: number, checkEvery: number): RoundActor {
  return createActor(createRoundMachine(work), { input: { round, checkEvery } });
}

/** The machine at `round`, started. */
export function startRoundActor(work: RoundWork, round: number, checkEvery: number): RoundActor {
  return createRoundActor(work, round, checkEvery).start();
}
