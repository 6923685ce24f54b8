import cliProgress from 'cli-progress';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TrainingConfig } from '../../config/training.ts';
import type { ClusterSummary } from '../../cluster/local-cluster.ts';
import { failureLine, runFailed, TrainingFailed } from '../../cluster/run-outcome.ts';
import { train as trainNetwork } from '../../api.ts';
import type { TlsFiles } from '../../cluster/tls.ts';
import type { FunctionPlatform } from '../../platform/platform.ts';
import { roundPoint } from '../../peer/round-log.ts';
import type { PeerStatus, RoundMetrics } from '../../peer/types.ts';
import type { Dashboard } from '../dashboard/server.ts';
import { stopAtBoundary } from '../signals.ts';
import type { MetricsRound } from '../plot/charts.ts';
import { formatBytes, formatMs, table } from '../format.ts';

export interface TrainCliOptions {
  peers: number;
  config: TrainingConfig;
  platform: FunctionPlatform;
  json?: boolean;
  metrics?: string;
  dataDir?: string;
  resume?: boolean;
  password?: string;
  quiet?: boolean;
  tls?: TlsFiles;
  saveDir?: string;
  checkpointEvery?: number;
  /** A dashboard serving the run (train --dashboard): it gets every status, round and log line. */
  dashboard?: Dashboard;
  /** See ClusterOptions.minPeers. */
  minPeers?: number;
  /**
   * Draw the run here at the end, as `peerless plot` draws a metrics file: run.svg (loss
   * against round and wall time, time per phase, bytes) and learning-curve.svg.
   */
  plotDir?: string;
  /** See ClusterOptions.advertise and .bind. */
  advertise?: string;
  bind?: string;
}

/**
 * A line per peer while training runs (round, phase, functions in flight, loss), on stderr
 * so stdout stays for the summary or the JSON document.
 */
function peerBars(enabled: boolean, peers: number) {
  if (!enabled) return { status: (_s: PeerStatus) => {}, round: (_m: RoundMetrics) => {}, log: (_m: string) => {}, total: (_n: number) => {}, stop: () => {} };
  const multi = new cliProgress.MultiBar(
    {
      format: '{peer} [{bar}] round {value}/{total} {phase} | in flight {inFlight} | loss {loss} | val {val}',
      stream: process.stderr, hideCursor: true, clearOnComplete: false, barsize: 20, forceRedraw: true,
    },
    cliProgress.Presets.shades_classic,
  );
  const bars = new Map<string, cliProgress.SingleBar>();
  let total = 1;
  const ids = Array.from({ length: peers }, (_, i) => `peer-${String(i).padStart(2, '0')}`);
  for (const id of ids) bars.set(id, multi.create(total, 0, { peer: id, phase: 'starting', inFlight: 0, loss: '-', val: '-' }));
  // The whole run: rounds every peer finished, elapsed time, and an ETA from the pace so far.
  const all = multi.create(total, 0, { peer: 'all    ' }, {
    format: '{peer} [{bar}] round {value}/{total} | elapsed {duration_formatted} | ETA {eta_formatted}',
  });
  const done = new Map<string, number>();
  return {
    total(n: number) { total = n; for (const b of bars.values()) b.setTotal(n); all.setTotal(n); },
    status(s: PeerStatus) {
      bars.get(s.id)?.update(Math.min(s.round, total), {
        phase: s.phase.padEnd(11), inFlight: s.inFlight,
        loss: s.loss === null ? '-' : s.loss.toFixed(4),
        val: s.validationAccuracy === null ? '-' : `${(s.validationAccuracy * 100).toFixed(2)}%`,
      });
    },
    round(m: RoundMetrics) {
      bars.get(m.peer)?.update(m.round + 1);
      done.set(m.peer, m.round + 1);
      if (done.size === bars.size) all.update(Math.min(...done.values()));
    },
    log(msg: string) { multi.log(`${msg}\n`); },
    stop() { multi.stop(); },
  };
}

export async function train(o: TrainCliOptions): Promise<ClusterSummary> {
  const tty = !o.json && !o.quiet && process.stderr.isTTY;
  const bars = peerBars(tty, o.peers);
  // Ctrl-C: the network stops cleanly after the next round (state kept for --resume), and the
  // run exits 130. A second Ctrl-C, or SIGTERM, quits at once (143 for SIGTERM): the
  // redis-servers are stopped and their directories removed on the way out.
  const abort = new AbortController();
  const unsubscribe = stopAtBoundary(() => {
    const msg = 'stopping after the next round (Ctrl-C again to quit at once)';
    if (tty) bars.log(msg);
    else process.stderr.write(`${msg}\n`);
    abort.abort();
  }, () => bars.stop());
  const curve: MetricsRound[] = [];
  // The API's train(), with the flags' network options; a failed run is summarised, not thrown.
  const summary = await trainNetwork({
    model: o.config.model.name,
    config: o.config,
    peers: o.peers,
    platform: o.platform,
    signal: abort.signal,
    returnModel: false,
    network: {
      password: o.password,
      tls: o.tls,
      ...(o.advertise ? { advertise: o.advertise } : {}),
      ...(o.bind ? { bind: o.bind } : {}),
      saveDir: o.saveDir,
      ...(o.checkpointEvery ? { checkpointEvery: o.checkpointEvery } : {}),
      metricsFile: o.metrics,
      dataDir: o.dataDir,
      resume: o.resume,
      minPeers: o.minPeers,
      onStatus: (s) => { bars.status(s); o.dashboard?.status(s); },
      onLog: (msg) => {
        o.dashboard?.log(msg);
        if (tty) bars.log(msg);
        else if (!o.json && !o.quiet) process.stderr.write(`${msg}\n`);
      },
      onPlan: (totalRounds) => { bars.total(totalRounds); o.dashboard?.plan(totalRounds); },
    },
    onRound: (m) => {
      if (o.plotDir) curve.push(plottedRound(m));
      bars.round(m);
      o.dashboard?.round(roundPoint(m));
      if (!tty && !o.json && !o.quiet && m.peer.endsWith('00') && (m.validationLoss !== undefined || m.round % 10 === 0)) {
        const val = m.validationAccuracy !== undefined ? `, validation ${(m.validationAccuracy * 100).toFixed(2)}%`
          : m.validationMae !== undefined ? `, validation MSE ${m.validationLoss!.toPrecision(4)}, MAE ${m.validationMae.toPrecision(4)}` : '';
        process.stderr.write(`round ${m.round}: loss ${m.loss.toFixed(4)}${val} (${formatMs(m.roundMs)})\n`);
      }
    },
  }).then((r) => r.summary, (err: unknown) => {
    if (err instanceof TrainingFailed) return err.summary;
    throw err;
  });
  if (o.plotDir && curve.length > 0) {
    const { learningCurve, runFigure } = await import('../plot/charts.ts');
    mkdirSync(o.plotDir, { recursive: true });
    const run = join(o.plotDir, 'run.svg'), learning = join(o.plotDir, 'learning-curve.svg');
    writeFileSync(run, runFigure(curve, `A run of ${o.peers} peer(s): loss, validation accuracy, phases, bytes`));
    writeFileSync(learning, learningCurve(curve, `Training loss and validation accuracy, ${o.peers} peer(s)`));
    summary.plotted = [run, learning];
  }
  o.dashboard?.finish(failureLine(summary) ?? `Training finished: ${summary.stopReason ?? 'stopped'}`, runFailed(summary));
  unsubscribe();
  bars.stop();
  if (o.json) process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
  else process.stdout.write(`${renderSummary(summary)}\n`);
  return summary;
}

export function renderSummary(s: ClusterSummary): string {
  // What failed comes first: a failed or partial run must not read like a success.
  const failed = s.outcomes.filter((o) => o.state === 'failed');
  const failure = failureLine(s);
  const lines = [
    '',
    ...(failure ? [failure] : []),
    ...(s.belowMinPeers && failed.length > 0 ? [`  ${s.belowMinPeers}`] : []),
    `Training finished: ${s.stopReason ?? 'stopped'}`,
    `  peers ${s.peers}, rounds ${s.rounds} (${s.epochs.toFixed(2)} epochs), ${s.parameters.toLocaleString()} parameters, wall time ${formatMs(s.wallMs)}`,
  ];
  if (s.test?.accuracy != null) lines.push(`  test accuracy ${(s.test.accuracy * 100).toFixed(2)}% on ${s.test.samples.toLocaleString()} test samples of ${s.test.source} (loss ${s.test.loss.toFixed(4)})`);
  else if (s.test) lines.push(`  test MSE ${s.test.loss.toPrecision(4)} against ${s.test.baselineMse?.toPrecision(4)} predicting the mean, MAE ${s.test.mae?.toPrecision(4)} (standardised targets) on ${s.test.samples.toLocaleString()} test samples of ${s.test.source}`);
  if (s.lastValidationAccuracy !== null) lines.push(`  last validation accuracy ${(s.lastValidationAccuracy * 100).toFixed(2)}%`);
  lines.push(
    `  replicas identical: ${s.identical ? 'yes' : 'NO'} (checksum ${s.checksums[0] ?? '-'})`,
    `  bytes received by peers in exchanges: ${formatBytes(s.bytesExchanged)}`,
    `  estimated function cost: $${s.estimatedCostUsd.toFixed(5)} (AWS Lambda prices)`,
    `  gradients computed on: ${s.computeBackend}; ${s.gradientInvocations.toLocaleString()} gradient calls, ${s.modelBuilds} of them built the model first (the local functions build it before the first round)`,
    ...(s.saved ? [`  model saved: ${s.saved.join(', ')}`] : []),
    ...(s.plotted ? [`  charts drawn: ${s.plotted.join(', ')}`] : []),
    ...(s.functionBusyShare !== null
      ? [`  function workers busy ${(s.functionBusyShare * 100).toFixed(1)}% of the training time: ${((1 - s.functionBusyShare) * 100).toFixed(1)}% went to everything else (averaging, exchange, aggregation, update, bookkeeping)`]
      : []),
    `  per peer, ${(s.overheadShare * 100).toFixed(1)}% of a round is outside its compute phase (including waiting for the other peers' functions)`,
    '',
    table(['phase (sum over peers)', 'time'], Object.entries(s.phaseMs).map(([k, v]) => [k, formatMs(v)])),
  );
  for (const o of s.outcomes) if (o.state === 'failed') lines.push(`  ${o.id} failed: ${o.error}`);
  return lines.join('\n');
}

/** What the charts need of a round, stamped with its arrival as a metrics line is. */
function plottedRound(m: RoundMetrics): MetricsRound {
  return {
    peer: m.peer, round: m.round, loss: m.loss, validationAccuracy: m.validationAccuracy, roundMs: m.roundMs, at: new Date().toISOString(),
    computeMs: m.computeMs, averageMs: m.averageMs, exchangeMs: m.exchangeMs, aggregateMs: m.aggregateMs, updateMs: m.updateMs,
    verifyMs: m.verifyMs, checkMs: m.checkMs, bytesReceived: m.bytesReceived,
  };
}
