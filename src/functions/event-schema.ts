import { z } from 'zod';
import { SampleSpecSchema } from '../data/spec.ts';
import type { FunctionEvents, FunctionName } from './events.ts';

/**
 * Shape checks for the events of src/functions/events.ts, applied where JSON enters from
 * the network (the HTTP server, the Lambda entry), so a malformed event is a 400 / a clear
 * error naming the field before any Redis or model work starts.
 */
const redis = z.looseObject({ url: z.string().min(1) }).superRefine((r, ctx) => {
  if (r.password !== undefined) {
    ctx.addIssue({ code: 'custom', path: ['password'], message: 'secrets do not travel in events: give the function its Redis credentials in its environment (PEERLESS_REDIS_USERNAME, PEERLESS_REDIS_PASSWORD; see peerless credentials)' });
  }
}).transform((r) => ({ url: r.url }));
const model = z.object({ name: z.string().min(1), width: z.number().positive().optional(), topologyKey: z.string().min(1).optional() });
const key = z.string().min(1);

const gradient = z.object({
  redis, model,
  layoutHash: z.string().min(1),
  layoutKey: key, paramsKey: key, batchImagesKey: key, batchLabelsKey: key,
  sumKey: key, avgKey: key,
  contributionId: z.string().min(1),
  expected: z.number().int().positive(),
  round: z.number().int().min(0).optional(),
  chunkElements: z.number().int().positive().max(1 << 25).optional(),
  backend: z.enum(['native', 'wasm', 'cpu']).optional(),
  microBatch: z.number().int().positive().optional(),
  checkpoint: z.boolean().optional(),
  samples: SampleSpecSchema.optional(),
});

const evaluate = z.object({
  redis, model,
  layoutHash: z.string().min(1),
  layoutKey: key, paramsKey: key, imagesKey: key, labelsKey: key,
  start: z.number().int().nonnegative(),
  count: z.number().int().positive(),
  samples: SampleSpecSchema.optional(),
});

const schemas = { gradient, evaluate } as const;

export const FUNCTION_NAMES: readonly FunctionName[] = ['gradient', 'evaluate'];

export function isFunctionName(name: unknown): name is FunctionName {
  return typeof name === 'string' && (FUNCTION_NAMES as readonly string[]).includes(name);
}

/** Throws an Error "invalid gradient event: expected: ... (path)" on the first problems. */
export function parseEvent<N extends FunctionName>(name: N, body: unknown): FunctionEvents[N] {
  const r = schemas[name].safeParse(body);
  if (!r.success) {
    const issues = r.error.issues.slice(0, 3).map((i) => `${i.path.join('.') || '(event)'}: ${i.message}`);
    throw new InvalidEvent(`invalid ${name} event: ${issues.join('; ')}`);
  }
  // Zod strips unknown keys; keep the caller's object so extra fields pass through.
  return body as FunctionEvents[N];
}

export class InvalidEvent extends Error {
  override readonly name = 'InvalidEvent';
}
