/**
 * The names of data sources, parsed without loading anything (the configuration checks them,
 * and `--help` must not load the loaders): `mnist`, `synthetic`, or `<format>:<path>`.
 */
export const FORMATS = ['idx', 'cifar10', 'npy', 'csv', 'images'] as const;
export type Format = (typeof FORMATS)[number];

/** A source string's format and path, or an error naming what is accepted. */
export function parseSource(source: string): { format: 'mnist' } | { format: 'synthetic' } | { format: Format; path: string } {
  if (source === 'mnist') return { format: 'mnist' };
  if (source === 'synthetic') return { format: 'synthetic' };
  const at = source.indexOf(':');
  const format = source.slice(0, at) as Format;
  if (at > 0 && FORMATS.includes(format) && source.length > at + 1) return { format, path: source.slice(at + 1) };
  throw new Error(`dataset "${source}": expected mnist, synthetic, or <format>:<path> with format ${FORMATS.join(', ')} (e.g. idx:./fashion-mnist, csv:./iris.csv)`);
}

/** "32x32" as width and height. */
export function parseResize(s: string): { width: number; height: number } {
  const m = /^(\d+)x(\d+)$/.exec(s);
  if (!m || Number(m[1]) < 1 || Number(m[2]) < 1 || Number(m[1]) > 4096 || Number(m[2]) > 4096) throw new Error(`resize "${s}": expected WIDTHxHEIGHT, e.g. 32x32`);
  return { width: Number(m[1]), height: Number(m[2]) };
}

