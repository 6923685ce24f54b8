import type { OptimizerConfig } from '../../config/training.ts';
import { chunks } from '../../tensor/bytes.ts';
import { adamCommand, call, sgdCommand } from '../../tensor/in-db.ts';
import type { Redis } from '../../tensor/redis-client.ts';
import { ensureTensor } from '../../tensor/transfer.ts';
import { optimizerTensors } from '../net/optimizer-slices.ts';
import { K } from '../net/keys.ts';
import type { ModelInfo } from '../types.ts';

export interface UpdateInput {
  peer: string;
  round: number;
  local: Redis;
  optimizer: OptimizerConfig;
  /** The round's learning rate (the schedule's, from the plan). */
  lr: number;
  model: Pick<ModelInfo, 'length' | 'trainable'>;
}

/**
 * Elements per piece of a long update: a few ms of the server's time each, where one
 * PL.SGD over a ResNet-18 vector held it 15-25 ms on a shared core.
 */
export const UPDATE_PIECE = 1 << 20;

/**
 * The update phase: the optimizer step on the round's aggregate, inside the database, applied
 * exactly once even when the peer restarts halfway. Slots past `trainable` (batch-norm
 * statistics) take the aggregated value instead of a step, copied inside the database.
 * Returns false when the round's update was already applied.
 *
 * A short vector takes its step in one MULTI with the round marker. A long one goes in pieces,
 * one command after another, so the server's other clients are served between them: each
 * piece is applied in one MULTI with its bit in the round's `updatedPieces`, the step the
 * round takes (Adam's count, SGD's first step) is decided once in `updatePlan`, and the round
 * marker comes last. A restarted peer skips the pieces already applied, so none is applied
 * twice, and the bytes equal one whole step's (the step is element-wise).
 */
export async function applyUpdate(x: UpdateInput): Promise<boolean> {
  if (Number((await x.local.get(K.round)) ?? 0) > x.round) return false;
  const { length, trainable } = x.model;
  const agg = K.aggregate(x.round);
  const copyStats = trainable < length ? [['PL.COPYRANGE', K.params, String(trainable), agg, String(trainable), String(length - trainable)]] : [];
  if (length <= UPDATE_PIECE) {
    await exec(x, [step(x, agg), ...copyStats, ['SET', K.round, String(x.round + 1)]]);
    return true;
  }
  // Over the whole vector, as the one-command step is (its statistics slots are then overwritten).
  const plan = await stepPieces(x, { offset: 0, count: length });
  await exec(x, [
    ...copyStats,
    ...(x.optimizer.kind === 'adam' ? [['SET', K.adamStep, String(plan.step)]] : []),
    ['SET', K.round, String(x.round + 1)],
    ['DEL', K.updatePlan(x.round), K.updatedPieces(x.round)],
  ]);
  return true;
}

/** Elements [offset, offset + count) of the vector. */
export interface Slice {
  offset: number;
  count: number;
}

/**
 * Takes the round's step on `slice` in pieces, each applied in one MULTI with its bit in
 * `updatedPieces` (numbered within the slice), skipping those a run before a restart applied.
 */
async function stepPieces(x: UpdateInput, slice: Slice): Promise<StepPlan> {
  const plan = await decideStep(x);
  const agg = K.aggregate(x.round);
  const done = (await call<Buffer | null>(x.local, ['GET', K.updatedPieces(x.round)], true)) ?? Buffer.alloc(0);
  for (const [j, piece] of chunks(slice.count, UPDATE_PIECE).entries()) {
    if (bitIsSet(done, j)) continue;
    const range = ['RANGE', String(slice.offset + piece.offset), String(piece.count), ...(x.optimizer.kind === 'sgd' ? (plan.first ? ['FIRST'] : []) : ['STEP', String(plan.step)])];
    await exec(x, [[...step(x, agg), ...range], ['SETBIT', K.updatedPieces(x.round), String(j), '1']]);
  }
  return plan;
}

/**
 * Exchange 'sharded-step', at the owner of `slice` (ZeRO's first stage): the optimizer step on
 * that slice only, from the slice's aggregate (at its place in `K.aggregate`), exactly once
 * even when the peer restarts halfway or after the install (marker `K.stepped`, and the round
 * marker). The parameters and the optimizer state outside the slice are not touched: the other
 * owners step theirs, and the update then installs every slice (installGathered). The
 * batch-norm statistics in the slice take the aggregated values, as in the whole update.
 */
export async function stepSlice(x: UpdateInput, slice: Slice): Promise<void> {
  // Taken, or installed already: a peer restarted after its install runs the round's phases
  // again (its status still said this round), and its slice must not take the step twice.
  if ((await x.local.exists(K.stepped(x.round))) > 0 || Number((await x.local.get(K.round)) ?? 0) > x.round) return;
  await stepPieces(x, slice);
  const from = Math.max(slice.offset, x.model.trainable), to = slice.offset + slice.count;
  const agg = K.aggregate(x.round);
  const copyStats = from < to ? [['PL.COPYRANGE', K.params, String(from), agg, String(from), String(to - from)]] : [];
  await exec(x, [...copyStats, ['SET', K.stepped(x.round), '1']]);
}

/**
 * Exchange 'sharded-step', at every peer: the round's new parameters, gathered from every
 * slice's owner into `K.nextParams`, become the parameters, in one MULTI with the round
 * marker. A swap of the two keys, not a copy: the replaced parameters become the buffer the
 * round after next gathers into, so nothing is allocated. Returns false when the round's
 * update was already applied.
 */
export async function installGathered(x: UpdateInput): Promise<boolean> {
  if (Number((await x.local.get(K.round)) ?? 0) > x.round) return false;
  const next = K.nextParams(x.round);
  if (Number(await x.local.strLen(next)) !== x.model.length * 4) throw new Error(`peer ${x.peer}: round ${x.round}'s gathered parameters are missing`);
  // Adam's step count, as the own slice's step decided it (every member steps a slice).
  const plan = await x.local.get(K.updatePlan(x.round));
  const adamStep = x.optimizer.kind === 'adam' && plan !== null ? [['SET', K.adamStep, String((JSON.parse(plan) as StepPlan).step)]] : [];
  await exec(x, [
    ['RENAME', K.params, K.paramsSwap],
    ['RENAME', next, K.params],
    ['RENAME', K.paramsSwap, next],
    ...adamStep,
    ['SET', K.round, String(x.round + 1)],
    // K.stepped stays (the round's keys are collected two rounds later): the step was taken.
    ['DEL', K.updatePlan(x.round), K.updatedPieces(x.round)],
  ]);
  return true;
}

/** The optimizer command over the whole vector (pieces append their RANGE). */
function step(x: UpdateInput, agg: string): string[] {
  const o = x.optimizer;
  return o.kind === 'sgd'
    ? sgdCommand(K.params, agg, K.velocity, { ...o, lr: x.lr })
    : adamCommand(K.params, agg, K.adamM, K.adamV, K.adamStep, { ...o, lr: x.lr });
}

interface StepPlan {
  first: boolean;
  step: number;
}

/**
 * The step this round's pieces take, decided before the first piece and kept (SET NX), so a
 * restart halfway finds the same one: Adam's step count, and whether it is SGD's first step
 * (no velocity yet: v = g'). The optimizer state is then allocated at full size, once.
 */
async function decideStep(x: UpdateInput): Promise<StepPlan> {
  const adam = x.optimizer.kind === 'adam';
  const decided = adam
    ? { first: false, step: Number((await x.local.get(K.adamStep)) ?? 0) + 1 }
    : { first: !(await x.local.exists(K.velocity)), step: 0 };
  await x.local.set(K.updatePlan(x.round), JSON.stringify(decided), { NX: true });
  const plan = JSON.parse((await x.local.get(K.updatePlan(x.round)))!) as StepPlan;
  for (const key of optimizerTensors(x.optimizer)) await ensureTensor(x.local, key, x.model.length);
  return plan;
}

/** Bit j of a Redis bitmap (SETBIT numbers bits from the first byte's high bit). */
function bitIsSet(bitmap: Buffer, j: number): boolean {
  return j >> 3 < bitmap.length && (bitmap[j >> 3] & (0x80 >> (j & 7))) !== 0;
}

async function exec(x: UpdateInput, commands: string[][]): Promise<void> {
  const tx = x.local.multi();
  for (const c of commands) tx.addCommand(c);
  const replies = await tx.exec();
  const failed = replies.find((r) => r instanceof Error);
  if (failed) throw new Error(`peer ${x.peer}: update of round ${x.round} failed: ${(failed as Error).message}`);
}
