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

function svg(option: Echarts.EChartsCoreOption, size: { width: number; height: number } = SIZE): string {
  const chart = echarts.init(null, null, { renderer: 'svg', ssr: true, ...size });
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

/** A round line of a metrics file (`train --metrics`): its time and the round's figures. */
export interface MetricsRound extends RoundLine {
  /** When the line was written (ISO time). */
  at?: string;
  computeMs?: number;
  averageMs?: number;
  exchangeMs?: number;
  aggregateMs?: number;
  updateMs?: number;
  verifyMs?: number;
  checkMs?: number;
  bytesReceived?: number;
}

/**
 * A long line as at most about `max` points: per bucket of consecutive points, its lowest and
 * its highest, in order, so spikes stay. ECharts would thin it too, but only after copying
 * every point of the option (a 10,000-round file spent most of its time there).
 */
export function thin(points: number[][], max = 1200): number[][] {
  if (points.length <= max) return points;
  const size = Math.ceil(points.length / (max / 2));
  const out: number[][] = [];
  for (let i = 0; i < points.length; i += size) {
    let lo = points[i]!, hi = points[i]!;
    for (let j = i + 1; j < Math.min(i + size, points.length); j++) {
      const p = points[j]!;
      if (p[1]! < lo[1]!) lo = p;
      if (p[1]! > hi[1]!) hi = p;
    }
    if (lo === hi) out.push(lo);
    else out.push(...(lo[0]! <= hi[0]! ? [lo, hi] : [hi, lo]));
  }
  return out;
}

/** The mean of `xs`, NaN when there are none. */
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/**
 * The loss and validation curves of a run: the mean loss over the peers and the validation
 * accuracy per round, and each peer's own loss line (drawn for at most 16 peers), all thinned
 * before ECharts copies them.
 */
function lossCurves(rounds: RoundLine[]) {
  const byRound = new Map<number, { loss: number[]; val: number[] }>();
  for (const r of rounds) {
    const at = byRound.get(r.round) ?? { loss: [], val: [] };
    if (Number.isFinite(r.loss)) at.loss.push(r.loss);
    if (typeof r.validationAccuracy === 'number') at.val.push(r.validationAccuracy);
    byRound.set(r.round, at);
  }
  const order = [...byRound.keys()].sort((a, b) => a - b);
  const peers = [...new Set(rounds.map((r) => r.peer))].sort();
  return {
    drawn: peers.length <= 16 ? peers : [],
    meanLoss: thin(order.filter((r) => byRound.get(r)!.loss.length > 0).map((r) => [r, mean(byRound.get(r)!.loss)])),
    val: thin(order.filter((r) => byRound.get(r)!.val.length > 0).map((r) => [r, mean(byRound.get(r)!.val)])),
    /** A peer's loss against `x` of its rounds (the round, or the time), in round order. */
    peerLoss: <R extends RoundLine>(peer: string, x: (r: R) => number | undefined) => thin((rounds as R[])
      .filter((r) => r.peer === peer && Number.isFinite(r.loss) && x(r) !== undefined)
      .sort((a, b) => a.round - b.round).map((r) => [x(r)!, r.loss])),
  };
}

const PHASES = ['compute', 'average', 'exchange', 'aggregate', 'update', 'verify', 'check'] as const;
/** Bars at most per panel: longer runs are shown as means over consecutive rounds. */
const MAX_BARS = 200;

/**
 * A run from its metrics file, in four panels: loss (a line per peer, their mean) and
 * validation accuracy against the round, the same loss against wall time, time per phase as
 * stacked bars per round (mean over the peers), and bytes received per round (sum over the
 * peers). Long runs: bars are means over bins of consecutive rounds, lines thinned to a point
 * per pixel.
 */
export function runFigure(rounds: MetricsRound[], title: string): string {
  const curves = lossCurves(rounds);
  const byRound = new Map<number, MetricsRound[]>();
  for (const r of rounds) {
    const at = byRound.get(r.round);
    if (at) at.push(r);
    else byRound.set(r.round, [r]);
  }
  const order = [...byRound.keys()].sort((a, b) => a - b);
  const finite = (xs: (number | undefined)[]) => xs.filter((x): x is number => typeof x === 'number' && Number.isFinite(x));
  // A reduce, not Math.min(...xs): a long run's lines are more than a call's arguments may be.
  const t0 = finite(rounds.map((r) => (r.at ? Date.parse(r.at) : undefined))).reduce((a, b) => Math.min(a, b), Infinity);
  const line = (extra: object) => ({ type: 'line', showSymbol: false, sampling: 'lttb', ...extra });
  // A colour per peer, the same in both loss panels.
  const colour = (i: number) => `hsl(${(i * 137) % 360}, 60%, 45%)`;
  const lossLines = (x: (r: MetricsRound) => number | undefined, axis: number) => curves.drawn.map((p, i) => line({
    name: `loss, ${p}`, xAxisIndex: axis, yAxisIndex: axis, color: colour(i), lineStyle: { width: 1, opacity: 0.5 },
    data: curves.peerLoss(p, x),
  }));
  // Bins of consecutive rounds, so a long run's bars stay readable.
  const width = Math.max(1, Math.ceil(order.length / MAX_BARS));
  const bins: number[][] = [];
  for (let i = 0; i < order.length; i += width) bins.push(order.slice(i, i + width));
  const label = (b: number[]) => (b.length === 1 ? String(b[0]) : `${b[0]}-${b.at(-1)}`);
  const binMean = (b: number[], f: (r: MetricsRound) => number | undefined, per: 'mean' | 'sum') =>
    mean(b.map((round) => { const xs = finite(byRound.get(round)!.map(f)); return per === 'sum' ? xs.reduce((a, c) => a + c, 0) : mean(xs); }).filter(Number.isFinite));
  const grids = [
    { top: 110, left: 80, width: '38%', height: '33%' },
    { top: 110, right: 80, width: '38%', height: '33%' },
    { bottom: 60, left: 80, width: '38%', height: '33%' },
    { bottom: 60, right: 80, width: '38%', height: '33%' },
  ];
  const panel = (text: string, i: number) => ({ text, textStyle: { fontSize: 13 }, left: i % 2 === 0 ? 80 : '55%', top: i < 2 ? 78 : '56.5%' });
  const y = (gridIndex: number, name: string, extra: object = {}) => ({ type: 'value', gridIndex, name, nameLocation: 'middle', nameGap: 50, ...extra });
  return svg({
    title: [{ text: title, left: 'center', top: 6 }, panel('loss and validation accuracy per round', 0), panel('loss against wall time', 1),
      panel('time per phase, mean over peers', 2), panel('bytes received per round, all peers', 3)],
    legend: { top: 40, left: 'center', width: '90%' },
    grid: grids,
    xAxis: [
      { type: 'value', gridIndex: 0, name: 'round', nameLocation: 'middle', nameGap: 25 },
      { type: 'value', gridIndex: 1, name: 'seconds', nameLocation: 'middle', nameGap: 25 },
      { type: 'category', gridIndex: 2, name: 'round', nameLocation: 'middle', nameGap: 25, data: bins.map(label) },
      { type: 'category', gridIndex: 3, name: 'round', nameLocation: 'middle', nameGap: 25, data: bins.map(label) },
    ],
    yAxis: [
      y(0, 'training loss'),
      y(1, 'training loss'),
      y(2, 'ms'),
      y(3, 'bytes', { nameGap: 72 }),
      y(0, 'validation accuracy', { min: 0, max: 1, splitLine: { show: false }, nameGap: 35 }),
    ],
    series: [
      ...lossLines((r) => r.round, 0),
      line({ name: 'training loss (mean over peers)', xAxisIndex: 0, yAxisIndex: 0, data: curves.meanLoss }),
      line({ name: 'validation accuracy', xAxisIndex: 0, yAxisIndex: 4, showSymbol: curves.val.length <= 60, data: curves.val }),
      // The same series names: one legend entry shows or hides a peer in both panels.
      ...(Number.isFinite(t0) ? lossLines((r) => (r.at ? (Date.parse(r.at) - t0) / 1000 : undefined), 1) : []),
      ...PHASES.map((ph) => ({
        name: ph, type: 'bar', stack: 'phases', xAxisIndex: 2, yAxisIndex: 2,
        data: bins.map((b) => Math.round(binMean(b, (r) => r[`${ph}Ms`], 'mean') * 10) / 10 || 0),
      })),
      { name: 'bytes received', type: 'bar', xAxisIndex: 3, yAxisIndex: 3, data: bins.map((b) => Math.round(binMean(b, (r) => r.bytesReceived, 'sum')) || 0) },
    ],
  }, { width: 1280, height: 900 });
}

/**
 * Training loss per round, a line per peer (at most 16; beyond that the mean over the peers
 * alone), the mean over the peers, and validation accuracy where it was checked.
 */
export function learningCurve(rounds: RoundLine[], title: string): string {
  const curves = lossCurves(rounds);
  // Long runs: each line is thinned to about a point per pixel, so a 10,000-round file draws
  // as fast as a short one.
  const perPeer = curves.drawn.map((p) => ({
    name: `loss, ${p}`, type: 'line', showSymbol: false, sampling: 'lttb', lineStyle: { width: 1, opacity: 0.5 },
    data: curves.peerLoss(p, (r) => r.round),
  }));
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
      { name: 'training loss (mean over peers)', type: 'line', showSymbol: false, sampling: 'lttb', data: curves.meanLoss },
      { name: 'validation accuracy', type: 'line', yAxisIndex: 1, sampling: 'lttb', showSymbol: curves.val.length <= 60, data: curves.val },
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

/** The original work's Table 1 rows, as `bench serverless --json` carries them (seconds). */
export interface PaperTable1Row { batchSize: number; wosS: number; wsS: number }

/** Ratio lines carry their values: the figures a reader compares. */
const RATIO_LABEL = { show: true, formatter: '{c}x', fontSize: 11 };

/** A ratio rounded for a chart's label, or null where the original work gives no figure. */
const ratio = (a: number | undefined, b: number | undefined) => (a !== undefined && b !== undefined && b > 0 ? Math.round((a / b) * 100) / 100 : null);

/**
 * The original work's Table 1: one peer's gradients without and with serverless offload, per
 * batch size, with the original work's speedup drawn beside ours (its times, on other
 * machines and another model, only compare as ratios).
 */
export function serverlessFigure(rows: ServerlessRowLike[], title: string, paper: PaperTable1Row[] = []): string {
  const s = (ms: number) => Math.round(ms) / 1000;
  const theirs = (r: ServerlessRowLike) => paper.find((p) => p.batchSize === r.batchSize);
  return svg({
    title: { text: title, left: 'center' },
    legend: { top: 34, itemGap: 30 },
    grid: { top: 80, left: 70, right: 80, bottom: 60 },
    xAxis: { type: 'category', data: rows.map((r) => `batch ${r.batchSize}`) },
    yAxis: [
      { type: 'value', name: 'seconds' },
      { type: 'value', name: 'speedup (x)', min: 0, splitLine: { show: false } },
    ],
    series: [
      { name: 'without serverless', type: 'bar', data: rows.map((r) => s(r.wosMs)) },
      { name: 'with serverless', type: 'bar', data: rows.map((r) => s(r.wsMs)) },
      { name: 'speedup, Peerless', type: 'line', yAxisIndex: 1, label: RATIO_LABEL, data: rows.map((r) => Math.round(r.speedup * 100) / 100) },
      ...(paper.length > 0 ? [{
        name: 'speedup, original work', type: 'line', yAxisIndex: 1, lineStyle: { type: 'dashed' }, connectNulls: true, label: RATIO_LABEL,
        data: rows.map((r) => ratio(theirs(r)?.wosS, theirs(r)?.wsS)),
      }] : []),
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

/** The original work's Table 2 rows, as `bench in-db --json` carries them (seconds). */
export interface PaperTable2Row { gradients: number; averageWithDbS: number; averageOutsideDbS: number; updateWithDbS: number; updateOutsideDbS: number }

/**
 * The original work's Table 2: averaging (after ingest) and the update, inside vs outside the
 * database, with how many times faster inside the database is, ours beside the original
 * work's (its times, on other machines, only compare as ratios).
 */
export function inDbFigure(rows: InDbRowLike[], title: string, paper: PaperTable2Row[] = []): string {
  const labels = rows.map((r) => `${r.gradients} gradients`);
  const theirs = (r: InDbRowLike) => paper.find((p) => p.gradients === r.gradients);
  const dashed = { type: 'line', yAxisIndex: 1, lineStyle: { type: 'dashed' }, connectNulls: true, label: RATIO_LABEL };
  return svg({
    title: { text: title, left: 'center' },
    // Eight entries: below the chart, clear of the axes' names.
    legend: { bottom: 8, itemGap: 20, width: '90%' },
    grid: { top: 80, left: 80, right: 80, bottom: 110 },
    xAxis: { type: 'category', data: labels },
    yAxis: [
      { type: 'log', name: 'ms (log)' },
      { type: 'log', name: 'outside / inside (x, log)', splitLine: { show: false } },
    ],
    series: [
      { name: 'average, in the database', type: 'bar', data: rows.map((r) => r.averageInDbAfterIngestMs) },
      { name: 'average, outside', type: 'bar', data: rows.map((r) => r.averageOutsideDbAfterIngestMs) },
      { name: 'update, in the database', type: 'bar', data: rows.map((r) => r.updateInDbMs) },
      { name: 'update, outside', type: 'bar', data: rows.map((r) => r.updateOutsideDbMs) },
      { name: 'average: outside / inside, Peerless', type: 'line', yAxisIndex: 1, label: RATIO_LABEL, data: rows.map((r) => ratio(r.averageOutsideDbAfterIngestMs, r.averageInDbAfterIngestMs)) },
      { name: 'update: outside / inside, Peerless', type: 'line', yAxisIndex: 1, label: RATIO_LABEL, data: rows.map((r) => ratio(r.updateOutsideDbMs, r.updateInDbMs)) },
      ...(paper.length > 0 ? [
        { ...dashed, name: 'average: outside / inside, original work', data: rows.map((r) => ratio(theirs(r)?.averageOutsideDbS, theirs(r)?.averageWithDbS)) },
        { ...dashed, name: 'update: outside / inside, original work', data: rows.map((r) => ratio(theirs(r)?.updateOutsideDbS, theirs(r)?.updateWithDbS)) },
      ] : []),
    ],
  });
}
