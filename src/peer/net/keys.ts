/** The parts of `K.updatedPieces` around its round. */
const UPDATED = ['r:', ':updated'] as const;

/**
 * Every key a peer keeps in its own Redis, in one place. Round keys carry the round number
 * so two rounds never mix, and old rounds can be removed by name.
 */
export const K = {
  config: 'peerless:config',
  members: 'peerless:members',
  /** Completed updates: the round this peer is in. Written atomically with the update. */
  round: 'peerless:round',
  state: 'peerless:state',
  /**
   * Which network and which peer this Redis belongs to, and the peer's incarnation (how many
   * times it entered the network on this Redis): a Redis that comes back without it lost its state.
   */
  identity: 'peerless:identity',
  /**
   * The last round to run, as the network agreed it (a round's view carries it, so every
   * member learns it at the same boundary).
   */
  stopAt: 'peerless:stop-at',
  /** A stop asked for by `peerless stop` (a round): the coordinator puts it in a view. */
  stopRequest: 'peerless:stop-request',
  progress: 'peerless:progress',
  /** Every round's figures, for dashboards (a capped stream: src/peer/round-log.ts). */
  roundLog: 'peerless:rounds',
  layout: 'model:layout',
  /** A custom model's topology (src/model/custom.ts), read by the functions. */
  topology: 'model:topology',
  params: 'model:params',
  velocity: 'opt:velocity',
  adamM: 'opt:m',
  adamV: 'opt:v',
  adamStep: 'opt:step',
  /**
   * Exchange 'sharded-step': the members (ids, in order) whose slices the optimizer state
   * above is laid out for. Each peer keeps the state of its own slice only; when the members
   * change, it fetches its new slice's state from the previous owners (optimizer-slices.ts).
   */
  optimizerLayout: 'opt:layout',
  /**
   * Exchange 'sharded-step': the ids of the members of the round this peer last prepared, with
   * the round (JSON): whose slices the optimizer state is in at the next round.
   */
  roundMembers: 'peerless:round-members',
  /** Where the update moves the parameters it replaces (a key swap, within one MULTI). */
  paramsSwap: 'model:params:swap',
  heartbeat: (id: string) => `peerless:heartbeat:${id}`,
  /** Join requests waiting for the coordinator (a list of JSON requests). */
  joinRequests: 'peerless:join-requests',
  /** The coordinator's answer to this peer's join request. */
  admission: 'peerless:admission',
  /** Channel on which senders announce the key names they wrote into this Redis. */
  inbox: 'peerless:inbox',
  /**
   * The round's gradient sum and average: recycled by round parity (PL.ACCUM ... ROUND r
   * starts a later round afresh in place and refuses an earlier round's late gradients).
   * `redo` names a second set, for a round whose gradients computed ahead were thrown away:
   * the thrown-away calls may still land in the first set, where nothing reads them.
   */
  gradSum: (r: number, redo = false) => `g:${r % 2}${redo ? ':redo' : ''}:sum`,
  gradAvg: (r: number, redo = false) => `g:${r % 2}${redo ? ':redo' : ''}:avg`,
  /** The round whose average `gradAvg` holds, written by the module when it is complete. */
  gradAvgRound: (r: number, redo = false) => `g:${r % 2}${redo ? ':redo' : ''}:avg:round`,
  /**
   * Marker: round r's gradients computed ahead were thrown away (a repair), so the round sums
   * them in the redo set. In the database, so that a peer restarted before the round still knows.
   */
  redo: (r: number) => `r:${r}:redo`,
  /** Marker: a peer's whole average arrived (exchange "all"). */
  from: (r: number, peer: string) => `r:${r}:from:${peer}`,
  /** Marker: a peer's slice of its average arrived at the slice's owner (exchange "sharded"). */
  part: (r: number, owner: string, peer: string) => `r:${r}:part:${owner}:from:${peer}`,
  /** Marker: an owner's aggregated slice arrived (exchange "sharded"). */
  gathered: (r: number, owner: string) => `r:${r}:gathered:${owner}`,
  /**
   * Recycled exchange buffers: allocated once at full size and rewritten every round (two
   * sets, by the round's parity, so a round never writes what the round before still reads).
   * The round-named markers above say when their content is a round's.
   */
  slot: {
    from: (r: number, peer: string) => `s:${r % 2}:from:${peer}`,
    part: (r: number, owner: string, peer: string) => `s:${r % 2}:part:${owner}:from:${peer}`,
  },
  /** The aggregate of every peer's average, the update's gradient (a recycled buffer). */
  aggregate: (r: number) => `s:${r % 2}:agg`,
  /**
   * Exchange 'sharded-step': the round's new parameters, each slice written by its owner after
   * its optimizer step (a recycled buffer; the update swaps it with the parameters).
   */
  nextParams: (r: number) => `s:${r % 2}:next`,
  /** Marker: this peer took the optimizer step on its own slice of round r (exchange 'sharded-step'). */
  stepped: (r: number) => `r:${r}:stepped`,
  /**
   * Marker: a member none of whose gradients arrived sits the round out (it rejoins). The
   * others stop waiting for its average, and count it toward the round's quorum: it will not
   * go on as a network of its own.
   */
  sitsOut: (r: number, peer: string) => `r:${r}:sits-out:${peer}`,
  /** A member's end-of-round report (checksum, leave); the coordinator's carries the next view. */
  report: (r: number, peer: string) => `r:${r}:report:${peer}`,
  evaluation: (r: number, peer: string) => `r:${r}:eval:${peer}`,
  /** The step a round's update takes, decided once (Adam's step count, SGD's first step). */
  updatePlan: (r: number) => `r:${r}:update`,
  /** Which pieces of a round's update are applied (a bitmap, set with each piece). */
  updatedPieces: (r: number) => `${UPDATED[0]}${r}${UPDATED[1]}`,
  /** What surrounds the round in `updatedPieces` (a script builds the key from the round it reads). */
  updatedPiecesAround: UPDATED,
  roundPattern: (r: number) => `r:${r}:*`,
};
