import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { plot } from './plot.ts';

const dir = mkdtempSync(join(tmpdir(), 'peerless-plot-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const write = (name: string, text: string) => {
  const f = join(dir, name);
  writeFileSync(f, text);
  return f;
};

// A metrics file as train --metrics writes it: the configuration, then a line per peer and round.
const metrics = [
  JSON.stringify({ type: 'config', at: '2026-12-01T00:00:00.000Z', resume: false, config: { model: { name: 'cnn' } } }),
  ...[0, 1, 2, 3].flatMap((round) => ['peer-00', 'peer-01'].map((peer) => JSON.stringify({
    type: 'round', at: '2026-12-01T00:00:01.000Z', peer, round, loss: 2.3 - round * 0.5 + (peer === 'peer-01' ? 0.1 : 0),
    ...(round === 3 ? { validationAccuracy: 0.9 } : {}),
  }))),
].join('\n');

describe('peerless plot', () => {
  it('draws a run\'s learning curve as SVG, mean loss over the peers and validation accuracy', () => {
    const file = write('rounds.jsonl', metrics);
    const r = plot(file);
    expect(r).toEqual({ out: join(dir, 'rounds.svg'), kind: 'learning-curve', points: 8, skipped: [] });
    const svg = readFileSync(r.out, 'utf8');
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('training loss (mean over peers)');
    expect(svg).toContain('validation accuracy');
    expect(svg).toContain('2 peer(s)');
    // One series per peer: its line (a path) and its legend entry.
    for (const peer of ['peer-00', 'peer-01']) expect(svg).toContain(`loss, ${peer}`);
  });

  it('draws a run in four panels: per round, against wall time, phases as stacked bars, bytes; and as a PNG on request', () => {
    const lines = metrics.split('\n').map((l, i) => (i === 0 ? l : JSON.stringify({ ...JSON.parse(l), computeMs: 120, exchangeMs: 30, updateMs: 5, bytesReceived: 4096 })));
    const file = write('phases.jsonl', lines.join('\n'));
    const svg = readFileSync(plot(file).out, 'utf8');
    for (const panel of ['loss and validation accuracy per round', 'loss against wall time', 'time per phase, mean over peers', 'bytes received per round, all peers']) expect(svg).toContain(panel);
    for (const phase of ['compute', 'exchange', 'update', 'bytes received']) expect(svg).toContain(phase);
    const png = plot(file, undefined, 'png');
    expect(png.out).toBe(join(dir, 'phases.png'));
    const bytes = readFileSync(png.out);
    expect(bytes.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    // The PNG header's size: the figure's own.
    expect([bytes.readUInt32BE(16), bytes.readUInt32BE(20)]).toEqual([1280, 900]);
  });

  it('draws the original work\'s Figure 2 from bench scaling --json', () => {
    const file = write('scaling.json', JSON.stringify({ benchmark: 'scaling', model: 'cnn', rows: [
      { peers: 4, batchSize: 64, computeMs: 1000, aggregationMs: 50, waitMs: 200 },
      { peers: 8, batchSize: 64, computeMs: 900, aggregationMs: 80, waitMs: 300 },
    ] }));
    const r = plot(file, join(dir, 'figure2.svg'));
    expect(r.kind).toBe('scaling');
    const svg = readFileSync(r.out, 'utf8');
    for (const s of ['gradient computation', 'aggregation (own work)', 'waiting for peers', 'Figure 2']) expect(svg).toContain(s);
  });

  it('draws the original work\'s Tables 1 and 2 from bench serverless --json and bench in-db --json', () => {
    const t1 = plot(write('serverless.json', JSON.stringify({ benchmark: 'serverless', model: 'cnn', rows: [
      { batchSize: 64, batches: 235, wosMs: 28_600, wsMs: 14_900, speedup: 1.92, wosCostUsd: 0.001, wsCostUsd: 0.001, maxAbsDiff: 0 },
      { batchSize: 128, batches: 118, wosMs: 29_400, wsMs: 15_400, speedup: 1.91, wosCostUsd: 0.001, wsCostUsd: 0.001, maxAbsDiff: 0 },
    ], paper: [{ batchSize: 64, batches: 235, wosS: 394.8, wsS: 10.5 }, { batchSize: 128, batches: 118, wosS: 330.4, wsS: 12.9 }] })));
    expect([t1.kind, t1.points]).toEqual(['serverless', 2]);
    // Ours and the original work's speedups side by side, with their values.
    for (const s of ['Table 1', 'without serverless', 'with serverless', 'speedup, Peerless', 'speedup, original work', 'batch 128', '1.92x', '37.6x', '25.61x']) expect(readFileSync(t1.out, 'utf8')).toContain(s);
    const t2 = plot(write('in-db.json', JSON.stringify({ benchmark: 'in-db', rows: [
      { gradients: 15, averageInDbAfterIngestMs: 276, averageOutsideDbAfterIngestMs: 10_800, updateInDbMs: 6.3, updateOutsideDbMs: 307 },
    ], paper: [{ gradients: 15, averageWithDbS: 37.41, averageOutsideDbS: 67.32, updateWithDbS: 4.8, updateOutsideDbS: 27.52 }] })));
    expect([t2.kind, t2.points]).toEqual(['in-db', 1]);
    for (const s of ['Table 2', 'average, in the database', 'update, outside', '15 gradients', 'original work', '39.13x', '48.73x', '1.8x', '5.73x']) expect(readFileSync(t2.out, 'utf8')).toContain(s);
  });

  it('plots a run longer than a function call\'s arguments may be (200,000 round lines)', () => {
    const lines = [metrics.split('\n')[0]!];
    for (let round = 0; round < 50_000; round++) {
      for (const peer of ['p0', 'p1', 'p2', 'p3']) lines.push(JSON.stringify({ type: 'round', at: new Date(Date.UTC(2026, 11, 1) + round * 100).toISOString(), peer, round, loss: 1 / (1 + round / 1000), computeMs: 50, bytesReceived: 1000 }));
    }
    const r = plot(write('long.jsonl', lines.join('\n')));
    expect(r.points).toBe(200_000);
    expect(readFileSync(r.out, 'utf8')).toContain('loss against wall time');
  });

  it('plots the valid lines of a truncated metrics file and names the others', () => {
    const lines = metrics.split('\n');
    const damaged = [...lines.slice(0, 4), '{"type":"round","peer":"peer-0', ...lines.slice(4), '{"type":"rou'].join('\n');
    const r = plot(write('truncated.jsonl', damaged));
    expect(r.kind).toBe('learning-curve');
    expect(r.skipped).toEqual([5, lines.length + 2]);
    expect(r.points).toBe(plot(write('whole.jsonl', metrics)).points);
  });

  it('says clearly what it cannot draw', () => {
    expect(() => plot(join(dir, 'missing.jsonl'))).toThrow(/^plot: cannot read .*missing\.jsonl \(ENOENT\)$/);
    expect(() => plot(write('bad.jsonl', 'not json\n{"round'))).toThrow('line 1 is not JSON');
    expect(() => plot(write('config-only.jsonl', metrics.split('\n')[0]!))).toThrow('has no round lines');
    expect(() => plot(write('round.json', JSON.stringify({ benchmark: 'round', rows: [] })))).toThrow('no picture for benchmark "round" yet');
  });
});
