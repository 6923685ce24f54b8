/**
 * CSV: a header row naming the columns, one sample per row, the class in the column named by
 * `labelColumn` (default "label"), every other column a numeric feature. Features become
 * float32, min-max scaled to [0, 1] with the training rows' range; labels are class indices
 * when they are all non-negative integers, class names otherwise, or regression targets
 * (`task` regression, or auto with numbers not all integers), standardised (tabular.ts). Quoted fields (RFC 4180)
 * are understood. No test split of its own: the caller carves one with --test-fraction.
 */
import { readDataFile } from '../read-file.ts';
import { classesOf, isRegressionTask, minMaxScale, targetBytes } from './tabular.ts';
import type { Splits, Task } from './splits.ts';

/** Rows of fields; quotes may hold commas, newlines and doubled quotes. */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [], field = '', quoted = false, i = 0;
  const endField = () => { row.push(field); field = ''; };
  const endRow = () => { endField(); if (row.length > 1 || row[0] !== '') rows.push(row); row = []; };
  while (i < text.length) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i += 2; continue; }
      if (c === '"') { quoted = false; i++; continue; }
      field += c; i++; continue;
    }
    if (c === '"' && field === '') { quoted = true; i++; continue; }
    if (c === ',') { endField(); i++; continue; }
    if (c === '\n' || c === '\r') { endRow(); i += c === '\r' && text[i + 1] === '\n' ? 2 : 1; continue; }
    field += c; i++;
  }
  if (field !== '' || row.length > 0) endRow();
  return rows;
}

export function loadCsv(file: string, labelColumn: string, task: Task = 'auto'): Splits {
  const text = readDataFile(file, 'CSV').toString('utf8');
  const [header, ...rows] = parseCsv(text.replace(/^\uFEFF/, ''));
  if (!header || rows.length === 0) throw new Error(`${file}: no rows under a header`);
  const names = header.map((h) => h.trim());
  const labelAt = names.indexOf(labelColumn);
  if (labelAt < 0) throw new Error(`${file}: no column "${labelColumn}" (columns: ${names.join(', ')}); name the label column with --label-column`);
  const features = names.length - 1;
  if (features < 1) throw new Error(`${file}: no feature columns beside "${labelColumn}"`);
  const values = new Float64Array(rows.length * features);
  const labels: string[] = [];
  rows.forEach((r, i) => {
    if (r.length !== names.length) throw new Error(`${file}: row ${i + 2} has ${r.length} fields, the header ${names.length}`);
    let f = 0;
    r.forEach((v, c) => {
      if (c === labelAt) { labels.push(v.trim()); return; }
      const x = v.trim() === '' ? NaN : Number(v);
      if (!Number.isFinite(x)) throw new Error(`${file}: row ${i + 2}, column "${names[c]}": "${v}" is not a number`);
      values[i * features + f++] = x;
    });
  });
  const scaled = minMaxScale([values], features);
  const inputs = new Uint8Array(scaled.values[0]!.buffer);
  const source = `${file} column "${labelColumn}"`;
  if (isRegressionTask(task, labels)) {
    const t = targetBytes([labels], 1, source);
    return { train: { inputs, labels: t.labels[0]!, count: rows.length, spec: { shape: [features], dtype: 'float32', classes: 0, targets: 1 } }, scaling: scaled.scaling, targetScaling: t.scaling };
  }
  const { classes, indices, names: classNames } = classesOf([labels], source);
  return {
    train: { inputs, labels: indices[0]!, count: rows.length, spec: { shape: [features], dtype: 'float32', classes }, ...(classNames ? { classNames } : {}) },
    scaling: scaled.scaling,
  };
}
