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
  /** A network-wide stop requested by `peerless stop`: the last round to run. */
  stopAt: 'peerless:stop-at',
  progress: 'peerless:progress',
  layout: 'model:layout',
  params: 'model:params',
  velocity: 'opt:velocity',
  adamM: 'opt:m',
  adamV: 'opt:v',
  adamStep: 'opt:step',
  heartbeat: (id: string) => `peerless:heartbeat:${id}`,
  /** Join requests waiting for the coordinator (a list of JSON requests). */
  joinRequests: 'peerless:join-requests',
  /** The coordinator's answer to this peer's join request. */
  admission: 'peerless:admission',
  /** Channel on which senders announce the key names they wrote into this Redis. */
  inbox: 'peerless:inbox',
  gradSum: (r: number) => `r:${r}:gsum`,
  gradAvg: (r: number) => `r:${r}:gavg`,
  /** A peer's whole average, sent to every other peer (exchange "all"). */
  from: (r: number, peer: string) => `r:${r}:from:${peer}`,
  /** A peer's slice of its average, sent to the slice's owner (exchange "sharded"). */
  part: (r: number, owner: string, peer: string) => `r:${r}:part:${owner}:from:${peer}`,
  /** The owner's aggregated slice. */
  reduced: (r: number, owner: string) => `r:${r}:reduced:${owner}`,
  /** The aggregate of every peer's average: the update's gradient. */
  aggregate: (r: number) => `r:${r}:agg`,
  /** A member's end-of-round report (checksum, leave); the coordinator's carries the next view. */
  report: (r: number, peer: string) => `r:${r}:report:${peer}`,
  evaluation: (r: number, peer: string) => `r:${r}:eval:${peer}`,
  roundPattern: (r: number) => `r:${r}:*`,
};
