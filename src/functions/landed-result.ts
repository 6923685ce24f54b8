import type { GradientResult } from './events.ts';

/**
 * What a gradient function computed, sent with its chunks (PL.PUSH RESULT) and kept by the
 * module with the counted contribution. A peer whose call failed after the function pushed
 * (the answer cut on the way back, or late past the call's timeout) reads it from its own
 * Redis instead of computing the batch again. The push's own time is not known when the
 * chunks leave, and the accumulation's state is the peer's to read: neither is kept.
 */
export type LandedResult = Omit<GradientResult, 'count' | 'done'>;

/** JSON has no NaN: a regression's accuracy travels as null, as over HTTP. */
export function encodeLandedResult(r: LandedResult): string {
  return JSON.stringify({ ...r, accuracy: Number.isNaN(r.accuracy) ? null : r.accuracy });
}

/**
 * The result kept with a counted contribution, or null when there is none to use: an id
 * counted without one (PL.ACCUM, or a writer that sent none keeps "1") or a value that is
 * not a result.
 */
export function decodeLandedResult(text: string | null): GradientResult | null {
  if (text === null || text === '1') return null;
  let v: unknown;
  try { v = JSON.parse(text); } catch { return null; }
  const r = v as Partial<LandedResult> & { accuracy?: number | null };
  const t = r?.timings as Partial<GradientResult['timings']> | undefined;
  if (typeof r?.loss !== 'number' || typeof r.samples !== 'number' || typeof t?.loadMs !== 'number' || typeof t.computeMs !== 'number') return null;
  return {
    loss: r.loss, accuracy: typeof r.accuracy === 'number' ? r.accuracy : NaN, samples: r.samples,
    ...(typeof r.mae === 'number' ? { mae: r.mae } : {}),
    ...(typeof r.backend === 'string' ? { backend: r.backend } : {}),
    ...(r.modelBuilt === true ? { modelBuilt: true } : {}),
    count: 0, done: false,
    timings: { loadMs: t.loadMs, computeMs: t.computeMs, pushMs: 0 },
  };
}
