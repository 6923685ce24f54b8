import type { AdamOptions, AggregationRule, SgdOptions } from './tensor-store.ts';

/**
 * Plain JavaScript maths of the module's commands, operation for operation in float32
 * (every intermediate rounded with Math.fround, as the C code computes in float), so the
 * outside-DB store gives the same bytes as the in-DB one and the tests have a reference.
 */
const f = Math.fround;

/** PyTorch-style SGD in place; `first` when the velocity did not exist yet. */
export function sgdStep(p: Float32Array, g: Float32Array, v: Float32Array, first: boolean, o: SgdOptions): void {
  const lr = f(o.lr), mom = f(o.momentum), damp = f(1 - (o.dampening ?? 0)), wd = f(o.weightDecay ?? 0);
  for (let i = 0; i < p.length; i++) {
    const gi = wd !== 0 ? f(g[i] + f(wd * p[i])) : g[i];
    const vi = first ? gi : f(f(mom * v[i]) + f(damp * gi));
    v[i] = vi;
    const step = o.nesterov ? f(gi + f(mom * vi)) : vi;
    p[i] = f(p[i] - f(lr * step));
  }
}

/** Adam / AdamW with bias correction; `step` is the new step count (1 on the first call). */
export function adamStep(p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, step: number, o: AdamOptions): void {
  const b1 = o.beta1 ?? 0.9, b2 = o.beta2 ?? 0.999, eps = o.eps ?? 1e-8, wd = o.weightDecay ?? 0;
  const bc1 = 1 - b1 ** step, bc2 = 1 - b2 ** step;
  const stepSize = o.lr / bc1, sqrtBc2 = Math.sqrt(bc2);
  for (let i = 0; i < p.length; i++) {
    let gi = g[i];
    if (wd !== 0 && !o.decoupled) gi = f(gi + f(wd * p[i]));
    if (wd !== 0 && o.decoupled) p[i] = f(p[i] - f(o.lr * wd * p[i]));
    m[i] = f(f(b1 * m[i]) + f((1 - b1) * gi));
    v[i] = f(f(b2 * v[i]) + f((1 - b2) * f(gi * gi)));
    const denom = Math.sqrt(v[i]) / sqrtBc2 + eps;
    p[i] = f(p[i] - (stepSize * m[i]) / denom);
  }
}

/**
 * The module's PL.AGGREGATE MEAN: the inputs summed in the order given (canonical) in double,
 * divided, rounded once to float32. JavaScript numbers are doubles: the same bytes.
 */
export function meanInOrder(inputs: Float32Array[]): Float32Array {
  const out = new Float32Array(inputs[0].length);
  const k = inputs.length;
  for (let i = 0; i < out.length; i++) {
    let acc = inputs[0][i];
    for (let j = 1; j < k; j++) acc += inputs[j][i];
    out[i] = acc / k;
  }
  return out;
}

/** Coordinate-wise aggregation of equally long inputs, already in canonical order. */
export function aggregateInto(out: Float32Array, inputs: Float32Array[], rule: AggregationRule): void {
  const n = inputs.length;
  if (n === 0) throw new Error('aggregate: no inputs');
  for (const t of inputs) if (t.length !== out.length) throw new Error(`aggregate: inputs differ in length (${t.length} vs ${out.length})`);
  if (rule.rule === 'mean') { out.set(meanInOrder(inputs)); return; }
  if (rule.rule === 'krum') { krumInto(out, inputs, rule.byzantine, rule.select); return; }
  const trim = rule.rule === 'trimmed' ? rule.trim : 0;
  if (rule.rule === 'trimmed' && 2 * trim >= n) throw new Error(`aggregate: TRIMMED ${trim} needs more than ${2 * trim} inputs`);
  const col = new Float32Array(n);
  for (let i = 0; i < out.length; i++) {
    for (let k = 0; k < n; k++) col[k] = inputs[k][i];
    col.sort();
    if (rule.rule === 'median') {
      out[i] = n % 2 === 1 ? col[(n - 1) / 2] : f(f(col[n / 2 - 1] + col[n / 2]) / 2);
    } else {
      let s = 0;
      for (let k = trim; k < n - trim; k++) s = f(s + col[k]);
      out[i] = f(s / (n - 2 * trim));
    }
  }
}

/** Multi-Krum: average of the `select` inputs closest to their n-f-2 nearest neighbours. */
function krumInto(out: Float32Array, inputs: Float32Array[], byz: number, select: number): void {
  const n = inputs.length;
  if (n <= 2 * byz + 2) throw new Error(`aggregate: KRUM ${byz} needs more than ${2 * byz + 2} inputs`);
  const d = Array.from({ length: n }, () => new Float64Array(n));
  for (let a = 0; a < n; a++) for (let b = a + 1; b < n; b++) {
    let s = 0;
    const x = inputs[a], y = inputs[b];
    for (let i = 0; i < x.length; i++) { const t = x[i] - y[i]; s += t * t; }
    d[a][b] = d[b][a] = s;
  }
  const scores = inputs.map((_, a) => {
    const others = [...d[a]].filter((_, b) => b !== a).sort((p, q) => p - q);
    return others.slice(0, n - byz - 2).reduce((s, x) => s + x, 0);
  });
  const chosen = scores.map((s, i) => [s, i] as const).sort((p, q) => p[0] - q[0] || p[1] - q[1]).slice(0, select).map(([, i]) => i).sort((p, q) => p - q);
  aggregateInto(out, chosen.map((i) => inputs[i]), { rule: 'mean' });
}

/** The module's 64-bit checksum, for the outside-DB store; see native/kernels.c (pl_checksum). */
export function checksum(values: Float32Array): string {
  // Blocks of 4096 words, each as 8 interleaved FNV-1a chains folded into the running FNV-1a
  // state (lane by lane, low half then high): mirrors the C code.
  const BLOCK = 4096, LANES = 8;
  const prime = 0x100000001b3n, mask = 0xffffffffffffffffn, basis = 0xcbf29ce484222325n;
  const words = new Uint32Array(values.buffer, values.byteOffset, values.length);
  let h = basis;
  for (let at = 0; at < words.length; at += BLOCK) {
    const lanes = new Array<bigint>(LANES).fill(basis);
    const end = Math.min(words.length, at + BLOCK);
    for (let i = at; i < end; i++) lanes[(i - at) % LANES] = ((lanes[(i - at) % LANES] ^ BigInt(words[i])) * prime) & mask;
    for (const lane of lanes) {
      h = ((h ^ (lane & 0xffffffffn)) * prime) & mask;
      h = ((h ^ (lane >> 32n)) * prime) & mask;
    }
  }
  return h.toString(16).padStart(16, '0');
}
