/**
 * Pictures of a run and of the benchmarks, as SVG drawn by ECharts' server-side renderer (no
 * browser, no canvas): a learning curve from a metrics file (`train --metrics`), the original
 * work's Figure 2 from `bench scaling --json`, its Table 1 from `bench serverless --json`, its
 * Table 2 from `bench in-db --json`, and compute per backend from `bench compute --json`.
 */
import { createRequire } from 'node:module';
import type * as Echarts from 'echarts';

// ECharts' single-file CommonJS bundle: its ES-module entry is hundreds of small files, which
// took 2 s to load under plain node (4.5 s through tsx), against 0.6 s for the bundle.
const echarts = createRequire(import.meta.url)('echarts') as typeof Echarts;

const SIZE = { width: 960, height: 540 };

function svg(option: Echarts.EChartsCoreOption): string {
  const chart = echarts.init(null, null, { renderer: 'svg', ssr: true, ...SIZE });
  try {
    chart.setOption({ animation: false, backgroundColor: '#fff', ...option });
    return chart.renderToSVGString();
  } finally {
    chart.dispose();
  }
}

export interface RoundLine {
  peer: string;
  round: number;
  loss: number;
  validationAccuracy?: number;
  roundMs?: number;
}

/**
 * Training loss per round, a line per peer (at most 16; beyond that the mean over the peers
 * alone), the mean over the peers, and validation accuracy where it was checked.
 */
export function learningCurve(rounds: RoundLine[], title: string): string {
  const byRound = new Map<number, { loss: number[]; val: number[] }>();
  for (const r of rounds) {
    const at = byRound.get(r.round) ?? { loss: [], val: [] };
    if (Number.isFinite(r.loss)) at.loss.push(r.loss);
    if (typeof r.validationAccuracy === 'number') at.val.push(r.validationAccuracy);
    byRound.set(r.round, at);
  }
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const order = [...byRound.keys()].sort((a, b) => a - b);
  const loss = order.filter((r) => byRound.get(r)!.loss.length > 0).map((r) => [r, mean(byRound.get(r)!.loss)]);
  const val = order.filter((r) => byRound.get(r)!.val.length > 0).map((r) => [r, mean(byRound.get(r)!.val)]);
  const peers = [...new Set(rounds.map((r) => r.peer))].sort();
  // Long runs: each line is thinned to about a point per pixel (largest-triangle sampling
  // keeps its shape), so a 10,000-round file draws as fast as a short one.
  const perPeer = peers.length <= 16 ? peers.map((p) => ({
    name: `loss, ${p}`, type: 'line', showSymbol: false, sampling: 'lttb', lineStyle: { width: 1, opacity: 0.5 },
    data: rounds.filter((r) => r.peer === p && Number.isFinite(r.loss)).sort((a, b) => a.round - b.round).map((r) => [r.round, r.loss]),
  })) : [];
  return svg({
    title: { text: title, left: 'center' },
    legend: { top: 34, itemGap: 30 },
    grid: { top: 80, left: 70, right: 80, bottom: 60 },
    xAxis: { type: 'value', name: 'round', nameLocation: 'middle', nameGap: 30 },
    yAxis: [
      { type: 'value', name: 'training loss' },
      { type: 'value', name: 'validation accuracy', min: 0, max: 1, splitLine: { show: false } },
    ],
    series: [
      ...perPeer,
      { name: 'training loss (mean over peers)', type: 'line', showSymbol: false, sampling: 'lttb', data: loss },
      { name: 'validation accuracy', type: 'line', yAxisIndex: 1, sampling: 'lttb', showSymbol: val.length <= 60, data: val },
    ],
  });
}

export interface ScalingRowLike {
  peers: number;
  batchSize: number;
  computeMs: number;
  aggregationMs: number;
  waitMs: number;
}

/** The original work's Figure 2: time per round split into computation and aggregation. */
export function scalingFigure(rows: ScalingRowLike[], title: string): string {
  const labels = rows.map((r) => `${r.peers} peers\nbatch ${r.batchSize}`);
  const s = (ms: number) => Math.round(ms) / 1000;
  return svg({
    title: { text: title, left: 'center' },
    legend: { top: 34, itemGap: 30 },
    grid: { top: 80, left: 70, right: 30, bottom: 80 },
    xAxis: { type: 'category', data: labels },
    yAxis: { type: 'value', name: 'seconds per round' },
    series: [
      { name: 'gradient computation', type: 'bar', stack: 'round', data: rows.map((r) => s(r.computeMs)) },
      { name: 'aggregation (own work)', type: 'bar', stack: 'round', data: rows.map((r) => s(r.aggregationMs)) },
      { name: 'waiting for peers', type: 'bar', stack: 'round', data: rows.map((r) => s(r.waitMs)) },
    ],
  });
}

export interface ComputeRowLike {
  model: string;
  batch: number;
  backend: string;
  msPerGradient: number | null;
}

/** ms per gradient for each model and batch, one bar per backend. */
export function computeFigure(rows: ComputeRowLike[], title: string): string {
  const groups = [...new Set(rows.map((r) => `${r.model} ${r.batch}`))];
  const backends = [...new Set(rows.map((r) => r.backend))];
  return svg({
    title: { text: title, left: 'center' },
    legend: { top: 34, itemGap: 30 },
    grid: { top: 80, left: 80, right: 30, bottom: 60 },
    xAxis: { type: 'category', data: groups.map((g) => g.replace(' ', '\nbatch ')) },
    yAxis: { type: 'log', name: 'ms per gradient (log)' },
    series: backends.map((b) => ({
      name: b, type: 'bar',
      data: groups.map((g) => rows.find((r) => `${r.model} ${r.batch}` === g && r.backend === b)?.msPerGradient ?? null),
    })),
  });
}

export interface ServerlessRowLike {
  batchSize: number;
  wosMs: number;
  wsMs: number;
  speedup: number;
}

/** The original work's Table 1: one peer's gradients without and with serverless offload, per batch size. */
export function serverlessFigure(rows: ServerlessRowLike[], title: string): string {
  const s = (ms: number) => Math.round(ms) / 1000;
  return svg({
    title: { text: title, left: 'center' },
    legend: { top: 34, itemGap: 30 },
    grid: { top: 80, left: 70, right: 80, bottom: 60 },
    xAxis: { type: 'category', data: rows.map((r) => `batch ${r.batchSize}`) },
    yAxis: [
      { type: 'value', name: 'seconds' },
      { type: 'value', name: 'speedup', min: 0, splitLine: { show: false } },
    ],
    series: [
      { name: 'without serverless', type: 'bar', data: rows.map((r) => s(r.wosMs)) },
      { name: 'with serverless', type: 'bar', data: rows.map((r) => s(r.wsMs)) },
      { name: 'speedup', type: 'line', yAxisIndex: 1, data: rows.map((r) => Math.round(r.speedup * 100) / 100) },
    ],
  });
}

export interface InDbRowLike {
  gradients: number;
  averageInDbAfterIngestMs: number;
  averageOutsideDbAfterIngestMs: number;
  updateInDbMs: number;
  updateOutsideDbMs: number;
}

/** The original work's Table 2: averaging (after ingest) and the update, inside vs outside the database. */
export function inDbFigure(rows: InDbRowLike[], title: string): string {
  const labels = rows.map((r) => `${r.gradients} gradients`);
  return svg({
    title: { text: title, left: 'center' },
    legend: { top: 34, itemGap: 30 },
    grid: { top: 80, left: 80, right: 30, bottom: 60 },
    xAxis: { type: 'category', data: labels },
    yAxis: { type: 'log', name: 'ms (log)' },
    series: [
      { name: 'average, in the database', type: 'bar', data: rows.map((r) => r.averageInDbAfterIngestMs) },
      { name: 'average, outside', type: 'bar', data: rows.map((r) => r.averageOutsideDbAfterIngestMs) },
      { name: 'update, in the database', type: 'bar', data: rows.map((r) => r.updateInDbMs) },
      { name: 'update, outside', type: 'bar', data: rows.map((r) => r.updateOutsideDbMs) },
    ],
  });
}
