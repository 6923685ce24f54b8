import { createRequire } from 'node:module';
import { readFileSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { computeFigure, inDbFigure, runFigure, scalingFigure, serverlessFigure, type ComputeRowLike, type InDbRowLike, type MetricsRound, type PaperTable1Row, type PaperTable2Row, type ScalingRowLike, type ServerlessRowLike } from '../plot/charts.ts';

export interface PlotResult {
  out: string;
  kind: 'learning-curve' | 'scaling' | 'compute' | 'serverless' | 'in-db';
  points: number;
  /** Lines of a metrics file that were not JSON (a truncated or damaged file): 1-based, skipped. */
  skipped: number[];
}

/** What `file` holds: a metrics file (JSON lines) or one benchmark's --json document. */
function read(file: string): { lines: Record<string, unknown>[]; skipped: number[] } | { doc: Record<string, unknown> } {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`plot: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  const trimmed = text.trim();
  try {
    const doc = JSON.parse(trimmed) as Record<string, unknown>;
    if (doc && typeof doc === 'object' && !Array.isArray(doc) && 'benchmark' in doc) return { doc };
  } catch { /* JSON lines, below */ }
  // A run killed mid-write leaves a truncated last line: the other lines are still a picture.
  const lines: Record<string, unknown>[] = [], skipped: number[] = [];
  text.split('\n').forEach((l, i) => {
    if (!l.trim()) return;
    try {
      lines.push(JSON.parse(l) as Record<string, unknown>);
    } catch {
      skipped.push(i + 1);
    }
  });
  if (lines.length === 0) throw new Error(`plot: ${file} line ${skipped[0]} is not JSON: expected a metrics file (train --metrics) or a benchmark's --json output`);
  return { lines, skipped };
}

/**
 * `peerless plot FILE`: an SVG of a run's learning curve (from `train --metrics`), of the
 * original work's Figure 2 (`bench scaling --json`), or of compute per backend (`bench compute --json`).
 */
export function plot(file: string, out?: string, format?: 'svg' | 'png'): PlotResult {
  if (format !== undefined && format !== 'svg' && format !== 'png') throw new Error(`plot: --format must be svg or png, got "${String(format)}"`);
  const input = read(file);
  const target = out ?? `${file.replace(/\.(jsonl|json)$/i, '')}.${format ?? 'svg'}`;
  let kind: PlotResult['kind'];
  let picture: string;
  let points: number;
  if ('doc' in input) {
    const doc = input.doc;
    if (doc.benchmark === 'scaling') {
      const rows = doc.rows as ScalingRowLike[];
      kind = 'scaling';
      points = rows.length;
      picture = scalingFigure(rows, `Figure 2: time per round, ${String(doc.model)} (${basename(file)})`);
    } else if (doc.benchmark === 'compute') {
      const rows = doc.rows as ComputeRowLike[];
      kind = 'compute';
      points = rows.length;
      picture = computeFigure(rows, `One gradient, one thread: wasm, native, PyTorch (${basename(file)})`);
    } else if (doc.benchmark === 'serverless') {
      const rows = doc.rows as ServerlessRowLike[];
      kind = 'serverless';
      points = rows.length;
      picture = serverlessFigure(rows, `Table 1: one peer's gradients without and with serverless, ${String(doc.model)} (${basename(file)})`, (doc.paper ?? []) as PaperTable1Row[]);
    } else if (doc.benchmark === 'in-db') {
      const rows = doc.rows as InDbRowLike[];
      kind = 'in-db';
      points = rows.length;
      picture = inDbFigure(rows, `Table 2: averaging and update inside vs outside the database (${basename(file)})`, (doc.paper ?? []) as PaperTable2Row[]);
    } else {
      throw new Error(`plot: no picture for benchmark "${String(doc.benchmark)}" yet (scaling, serverless, in-db and compute have one)`);
    }
  } else {
    const rounds = input.lines.filter((l) => l.type === 'round' || (l.type === undefined && typeof l.round === 'number')) as unknown as MetricsRound[];
    if (rounds.length === 0) throw new Error(`plot: ${file} has no round lines (is it a metrics file from train --metrics?)`);
    kind = 'learning-curve';
    points = rounds.length;
    const peers = new Set(rounds.map((r) => r.peer)).size;
    picture = runFigure(rounds, `A run of ${peers} peer(s): loss, validation accuracy, phases, bytes (${basename(file)})`);
  }
  writeFileSync(target, /\.png$/i.test(target) ? toPng(picture) : picture);
  return { out: target, kind, points, skipped: 'skipped' in input ? input.skipped : [] };
}

/** The SVG rasterised (resvg, loaded only for a PNG), white behind, at the SVG's own size. */
function toPng(svg: string): Buffer {
  const { Resvg } = createRequire(import.meta.url)('@resvg/resvg-js') as typeof import('@resvg/resvg-js');
  return new Resvg(svg, { background: '#ffffff', font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' } }).render().asPng();
}
