import { describe, expect, it } from 'vitest';
import type { ClusterSummary } from '../../cluster/local-cluster.ts';
import { parseTrainingConfig } from '../../config/training.ts';
import { TrainingFailed } from '../../cluster/run-outcome.ts';
import { renderSummary } from './train.ts';

// The end of a run as a person reads it: a failure must come first, never read like success.
const base: ClusterSummary = {
  peers: 2, rounds: 3, epochs: 0.5, stopReason: 'round limit 3 reached', wallMs: 1000, phaseMs: { compute: 10 },
  overheadShare: 0.1, functionBusyShare: 0.9, computeBackend: 'wasm', trainingMs: 900, bytesExchanged: 1024, gradientInvocations: 12, modelBuilds: 2,
  estimatedCostUsd: 0.0001, checksums: ['aa', 'aa'], identical: true, lastValidationAccuracy: null, test: null, parameters: 10,
  config: parseTrainingConfig({ model: { name: 'cnn' } }),
  outcomes: [
    { id: 'peer-00', state: 'done', rounds: 3, stopReason: 'round limit 3 reached', error: null, checksum: 'aa' },
    { id: 'peer-01', state: 'done', rounds: 3, stopReason: 'round limit 3 reached', error: null, checksum: 'aa' },
  ],
};

describe('the summary at the end of train', () => {
  it('a clean run starts with what finished it', () => {
    expect(renderSummary(base).trim().split('\n')[0]).toBe('Training finished: round limit 3 reached');
  });

  it('a failed run says what failed first, then the summary', () => {
    const failed: ClusterSummary = {
      ...base,
      outcomes: [base.outcomes[0]!, { ...base.outcomes[1]!, state: 'failed', error: 'its Redis at redis://127.0.0.1:1 is unreachable (ECONNREFUSED)' }],
    };
    const lines = renderSummary(failed).trim().split('\n');
    expect(lines[0]).toBe('Training FAILED: peer-01: its Redis at redis://127.0.0.1:1 is unreachable (ECONNREFUSED)');
    expect(lines[1]).toMatch(/^Training finished: /);
    // The API's train() throws it with the same first line, and the summary to print.
    const thrown = new TrainingFailed(failed);
    expect(thrown.message).toBe('training failed: peer-01: its Redis at redis://127.0.0.1:1 is unreachable (ECONNREFUSED)');
    expect(thrown.summary).toBe(failed);
  });

  it('with several failed peers, the one that ended first comes first', () => {
    const both: ClusterSummary = {
      ...base,
      outcomes: [
        { ...base.outcomes[0]!, state: 'failed', error: 'out of the network, and no member it knew admitted it again', endedAt: 2_000 },
        { ...base.outcomes[1]!, state: 'failed', error: 'its Redis at redis://127.0.0.1:1 is unreachable (ECONNREFUSED)', endedAt: 1_000 },
      ],
    };
    expect(renderSummary(both).trim().split('\n')[0]).toBe('Training FAILED: peer-01: its Redis at redis://127.0.0.1:1 is unreachable (ECONNREFUSED) (and 1 more peer(s), below)');
  });

  it('replicas that differ are a failure too', () => {
    const split: ClusterSummary = { ...base, checksums: ['aa', 'bb'], identical: false };
    expect(renderSummary(split).trim().split('\n')[0]).toBe('Training FAILED: the replicas differ');
  });
});
