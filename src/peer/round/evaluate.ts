import type { TrainingConfig } from '../../config/training.ts';
import type { EvaluateResult, FunctionRedis, ModelRef } from '../../functions/events.ts';
import type { FunctionPlatform } from '../../platform/platform.ts';
import type { Redis } from '../../tensor/redis-client.ts';
import type { Inbox } from '../net/inbox.ts';
import { isRegression } from '../../data/spec.ts';
import { K } from '../net/keys.ts';
import type { PeerLinks } from '../net/links.ts';
import type { MemberRecord } from '../net/membership.ts';
import type { PeerData } from '../types.ts';
import { sliceRanges } from './exchange.ts';

/** Samples one `evaluate` invocation handles. */
const EVAL_CHUNK = 1000;

export interface CheckInput {
  peer: string;
  round: number;
  members: MemberRecord[];
  validation: PeerData['validation'];
  platform: FunctionPlatform;
  /** The peer's Redis as functions reach it, and the model they evaluate. */
  redis: FunctionRedis;
  model: ModelRef;
  /** What a held-out sample is. */
  samples: PeerData['samples'];
  layoutHash: string;
  config: Pick<TrainingConfig, 'targetAccuracy' | 'patience' | 'deadlineMs'>;
  local: Redis;
  links: PeerLinks;
  inbox: Inbox;
}

export interface CheckResult {
  /** NaN for a regression, whose measure is `mae` (and `loss`, its MSE). */
  accuracy: number;
  loss: number;
  mae?: number;
  /** Why training stops here (target reached, patience run out), or null to go on. */
  stop: string | null;
}

interface Counts { loss: number; correct: number; absError?: number; samples: number }

/**
 * The convergence check (every `checkEvery` rounds): the members split the held-out set, each
 * evaluates its slice with `evaluate` functions and sends its counts to all; a missing
 * member's slice is evaluated here instead. Every peer sums the same counts, so all reach the
 * same decision.
 */
export async function checkConvergence(x: CheckInput): Promise<CheckResult> {
  const ranges = sliceRanges(x.validation.count, x.members.length);
  const myIndex = x.members.findIndex((m) => m.id === x.peer);
  const mine = await evaluateRange(x, ranges[myIndex].offset, ranges[myIndex].count);
  const key = K.evaluation(x.round, x.peer);
  await x.local.set(key, JSON.stringify(mine));
  const others = x.members.filter((m) => m.id !== x.peer);
  await Promise.allSettled(others.map((m) => x.links.sendValue(m.url, key, JSON.stringify(mine))));
  const { present } = await x.inbox.waitFor(others.map((m) => K.evaluation(x.round, m.id)), x.config.deadlineMs);
  let total = { ...mine };
  for (const [j, m] of x.members.entries()) {
    if (m.id === x.peer) continue;
    const k = K.evaluation(x.round, m.id);
    const r = present.includes(k)
      ? (JSON.parse(String(await x.local.get(k))) as Counts)
      : await evaluateRange(x, ranges[j].offset, ranges[j].count);
    total = { loss: total.loss + r.loss, correct: total.correct + r.correct, absError: (total.absError ?? 0) + (r.absError ?? 0), samples: total.samples + r.samples };
  }
  const regression = isRegression(x.samples);
  const accuracy = regression ? NaN : total.correct / total.samples;
  const loss = total.loss / total.samples;
  if (regression) return { accuracy, loss, mae: (total.absError ?? 0) / total.samples, stop: await decide(x, -loss, `validation MSE ${loss.toPrecision(4)}`) };
  return { accuracy, loss, stop: await decide(x, accuracy, `validation accuracy ${(accuracy * 100).toFixed(2)}%`) };
}

/** Evaluates samples [start, start+count) of the held-out set with `evaluate` functions. */
async function evaluateRange(x: CheckInput, start: number, count: number): Promise<Counts> {
  const v = x.validation;
  const parts: Promise<EvaluateResult>[] = [];
  for (let s = start; s < start + count; s += EVAL_CHUNK) {
    parts.push(x.platform.invoke('evaluate', {
      redis: x.redis, model: x.model, layoutHash: x.layoutHash, layoutKey: K.layout,
      paramsKey: K.params, imagesKey: v.imagesKey, labelsKey: v.labelsKey, start: s, count: Math.min(EVAL_CHUNK, start + count - s), samples: x.samples,
    }));
  }
  const rs = await Promise.all(parts);
  return rs.reduce((a, r) => ({ loss: a.loss + r.loss * r.samples, correct: a.correct + r.correct, absError: a.absError + (r.absError ?? 0), samples: a.samples + r.samples }), { loss: 0, correct: 0, absError: 0, samples: 0 });
}

/**
 * Target reached, or no better score for `patience` checks: the same on every peer. The score
 * is the validation accuracy, or a regression's -MSE (lower error is better; the accuracy
 * target does not apply to it).
 */
async function decide(x: CheckInput, score: number, what: string): Promise<string | null> {
  const raw = await x.local.get(K.progress);
  // `best` is null before the first check (a regression's scores are below any start value).
  const p: { best: number | null; bestWhat?: string; checksSinceBest: number } = raw ? JSON.parse(raw) : { best: null, checksSinceBest: 0 };
  if (p.best === null || score > p.best) { p.best = score; p.bestWhat = what; p.checksSinceBest = 0; } else p.checksSinceBest++;
  await x.local.set(K.progress, JSON.stringify(p));
  const c = x.config;
  const regression = isRegression(x.samples);
  if (!regression && score >= c.targetAccuracy) return `${what} reached the target ${(c.targetAccuracy * 100).toFixed(2)}%`;
  if (c.patience > 0 && p.checksSinceBest >= c.patience) return `no better ${regression ? 'validation MSE' : 'validation accuracy'} in ${p.checksSinceBest} checks (best: ${p.bestWhat ?? p.best})`;
  return null;
}
