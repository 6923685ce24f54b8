import type { GradientEvent, GradientResult } from '../../functions/events.ts';
import type { FunctionPlatform } from '../../platform/platform.ts';
import { hedged, type CallTimes } from '../../platform/hedge.ts';
import { decodeLandedResult } from '../../functions/landed-result.ts';
import { mayPassAtOnce, mayPassLater, RetriesExhausted, withRetries, withTimeout } from '../../platform/retry.ts';
import type { InDbTensorStore } from '../../tensor/in-db.ts';
import { DroppedError } from '../net/agreement.ts';

/** What the compute phase needs: the round's batches, where their events go, until when. */
export interface ComputeInput {
  peer: string;
  round: number;
  batches: number[];
  /** performance.now() time after which a failing batch is given up (the function deadline). */
  until: number;
  event(batch: number, expected: number): GradientEvent;
  platform: FunctionPlatform;
  store: InDbTensorStore;
  /** The round's gradient sum and average, closed here when a batch is given up. */
  sumKey: string;
  avgKey: string;
  log(msg: string): void;
  /** Called with +1 when a gradient call starts, -1 when it ends (the progress display). */
  inFlight(delta: number): void;
  /**
   * The round's gradients are no longer wanted (a round computed ahead and thrown away): no
   * call is retried, calls under way run to their end, and the average is not closed.
   */
  abandon?: AbortSignal;
  /**
   * This peer's recent call times. On an elastic platform a call slower than a few of them
   * gets another copy (src/platform/hedge.ts); the times of answered calls that did not build the model are added.
   */
  callTimes?: CallTimes;
}

export interface ComputeResult {
  samples: number;
  /** Mean over the samples of the gradients that arrived (NaN when none). */
  loss: number;
  /** NaN for a regression, whose measure is `mae`. */
  accuracy: number;
  mae?: number;
  /** Sum over invocations of the functions' own compute time. */
  functionComputeMs: number;
  failedBatches: number;
  /** The compute backend(s) the functions reported, comma-separated ('' when none said). */
  backend: string;
  /** Gradient invocations that answered, and how many of them built the model first. */
  invocations: number;
  modelBuilds: number;
  /** Calls that got more than one copy, being slow to answer or failing fast (elastic platforms). */
  hedges: number;
  /** Failed calls whose gradient had counted: their result was read from the database instead of calling again. */
  landed: number;
}

/**
 * The compute phase: one gradient function per batch, all at once. A failing call is retried
 * with backoff until the function deadline (the gradient counts once per batch, whatever the
 * attempts); a batch that still fails is reported, and the average is then closed inside the
 * database over the gradients that arrived. A peer none of whose gradients arrived sits the
 * round out: DroppedError, and it asks to rejoin.
 */
export async function computeGradients(x: ComputeInput): Promise<ComputeResult> {
  let hedges = 0, landed = 0;
  const outcomes = await Promise.all(x.batches.map((b) => gradientUntil(x, b, () => { hedges++; }, () => { landed++; })));
  let samples = 0, lossSum = 0, correct = 0, absError = 0, fnMs = 0, invocations = 0, modelBuilds = 0, regression = false;
  const backends = new Set<string>();
  const failed: { batch: number; error: Error }[] = [];
  for (const [i, o] of outcomes.entries()) {
    if ('error' in o) { failed.push({ batch: x.batches[i], error: o.error }); continue; }
    const r = o.result;
    samples += r.samples;
    lossSum += r.loss * r.samples;
    if (typeof r.mae === 'number') { regression = true; absError += r.mae * r.samples; } else correct += r.accuracy * r.samples;
    fnMs += r.timings.computeMs;
    if (r.backend) backends.add(r.backend);
    invocations++;
    if (r.modelBuilt) modelBuilds++;
  }
  if (failed.length > 0 && !x.abandon?.aborted) await closeAverage(x, failed);
  return {
    samples, loss: samples > 0 ? lossSum / samples : NaN, accuracy: samples > 0 && !regression ? correct / samples : NaN,
    ...(regression ? { mae: samples > 0 ? absError / samples : NaN } : {}),
    functionComputeMs: fnMs, failedBatches: failed.length, backend: [...backends].sort().join(','), invocations, modelBuilds, hedges, landed,
  };
}

/** Invokes one batch's gradient, retrying what may pass later, until the deadline. */
async function gradientUntil(x: ComputeInput, batch: number, onHedge: () => void, onLanded: () => void): Promise<{ result: GradientResult } | { error: Error }> {
  const event = x.event(batch, x.batches.length);
  // A call still running at the deadline may yet land; the closed average refuses it then.
  const late = () => Object.assign(new Error('no answer before the function deadline'), { retryable: false, late: true });
  // The cause worth reporting: a last call cut by the deadline says less than the failure before it.
  let cause: Error | undefined;
  // At the deadline the call is abandoned: a platform that can stop it frees its instance.
  const hedgeAfterMs = x.platform.elastic && x.callTimes ? x.callTimes.hedgeAfterMs() : 0;
  // The function may have pushed before its answer was lost (a connection cut on the way back,
  // a timeout while it finished): then the gradient counted, and the module kept the
  // function's result with it. Read there, the batch needs no further call.
  const fromDatabase = async (): Promise<{ result: GradientResult; landed: boolean } | null> => {
    const result = await landedResult(x, event);
    return result ? { result, landed: true } : null;
  };
  const copy = (signal: AbortSignal) => x.platform.invoke('gradient', event, { signal }).then(
    (result) => ({ result, landed: false }),
    async (err: unknown) => { if (signal.aborted) throw err; return (await fromDatabase()) ?? Promise.reject(err); },
  );
  const call = () => {
    const stop = new AbortController();
    // On an elastic platform a copy that fails fast is replaced at once (src/platform/hedge.ts),
    // unless the platform is throttling: that takes the backoff of the retries below.
    const work = hedged(copy, hedgeAfterMs, stop.signal, x.platform.elastic ? mayPassAtOnce : undefined).then((h) => {
      // A result read from the database says nothing of how long calls take.
      if (h.value.landed) onLanded();
      else if (!h.value.result.modelBuilt) x.callTimes?.add(h.ms);
      if (h.hedged) onHedge();
      return h.value.result;
    });
    return withTimeout(work, x.until - performance.now(), () => { stop.abort(); return late(); })
      .catch(async (err: Error) => {
        if (!(err as { late?: boolean }).late) { cause = err; throw err; }
        // Cut by the deadline: the call may have landed meanwhile.
        const landed = await fromDatabase();
        if (landed) { onLanded(); return landed.result; }
        throw err;
      });
  };
  x.inFlight(1);
  try {
    const out = await withRetries(call, mayPassLater, { attempts: Number.POSITIVE_INFINITY, baseDelayMs: 100, maxDelayMs: 2_000, until: x.until, signal: x.abandon });
    return { result: out.value };
  } catch (err) {
    const e = err as RetriesExhausted;
    const cutShort = (e.cause as { late?: boolean }).late === true && cause !== undefined;
    const error = cutShort ? cause! : e.cause;
    if (e.attempts > 1) error.message += ` (${e.attempts} calls in this round${cutShort ? ', the last cut short by the deadline' : ''})`;
    return { error };
  } finally {
    x.inFlight(-1);
  }
}

/** The result the module kept with the counted gradient of `event`'s batch, if it counted with one. */
async function landedResult(x: ComputeInput, { contributionId, round }: GradientEvent): Promise<GradientResult | null> {
  if (round === undefined) return null;
  try {
    return decodeLandedResult(await x.store.landedResult(x.sumKey, contributionId, round));
  } catch {
    return null; // the peer's Redis is the round's problem, reported where it is used next
  }
}

/** Averages what arrived, inside the database; later arrivals are refused there. */
async function closeAverage(x: ComputeInput, failed: { batch: number; error: Error }[]): Promise<void> {
  const expected = x.batches.length;
  const which = failed.map((f) => `b${f.batch}`).join(', ');
  const first = failed[0].error.message;
  let counted: number;
  try {
    counted = (await x.store.closeAccumulation(x.sumKey, x.avgKey, x.round)).count;
  } catch (err) {
    // Nothing whole arrived (chunks of an attempt that never completed count for nothing).
    if (!/no contribution .* (arrived|is complete)/.test((err as Error).message)) throw err;
    throw new DroppedError(x.peer, x.round, `none of its ${expected} gradient(s) arrived before the function deadline; first error: ${first}`);
  }
  x.log(`round ${x.round}: gradient(s) ${which} failed until the function deadline (${first}); averaging the ${counted} of ${expected} that arrived`);
}
