// Option parsers the command definitions need before any command runs: kept light, since
// --help loads them.

/** Parses "I/N" (this peer holds shard I of N). */
export function parseShard(v: string): { index: number; count: number } {
  const m = /^(\d+)\/(\d+)$/.exec(v);
  const index = m ? Number(m[1]) : NaN, count = m ? Number(m[2]) : NaN;
  if (!m || count < 1 || index >= count) throw new Error(`--shard must be I/N with 0 <= I < N, got "${v}"`);
  return { index, count };
}
