import type { ClusterSummary } from './local-cluster.ts';

/** Whether a run failed: a peer failed, the replicas differ, or too few peers were left. */
export function runFailed(s: ClusterSummary): boolean {
  return s.outcomes.some((o) => o.state === 'failed') || !s.identical || s.belowMinPeers !== undefined;
}

/**
 * What failed first in a failed run: the peer that ended failed first (the others' failures
 * often follow from it, as a peer that cannot rejoin through a member whose Redis died), in
 * peer order when the times are not known.
 */
function failureCause(s: ClusterSummary): string {
  const failed = s.outcomes.filter((o) => o.state === 'failed').sort((a, b) => (a.endedAt ?? Infinity) - (b.endedAt ?? Infinity));
  return `${failed.length > 0 ? `${failed[0]!.id}: ${failed[0]!.error}` : s.belowMinPeers ?? 'the replicas differ'}${failed.length > 1 ? ` (and ${failed.length - 1} more peer(s), below)` : ''}`;
}

/** The "Training FAILED: ..." line of a failed run (what failed first), or null. */
export function failureLine(s: ClusterSummary): string | null {
  return runFailed(s) ? `Training FAILED: ${failureCause(s)}` : null;
}

/** A run that ended failed: its summary says what failed and what was done before. */
export class TrainingFailed extends Error {
  override readonly name = 'TrainingFailed';
  constructor(readonly summary: ClusterSummary) {
    super(`training failed: ${failureCause(summary)}`);
  }
}
