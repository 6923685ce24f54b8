/** The pre-made vectors `bench round`'s writers push (a module of its own: worker threads import it). */

/** Gradient-like vectors, the same in every run. */
export function makeGradients(length: number, count: number): Float32Array[] {
  return Array.from({ length: count }, (_, k) => {
    const g = new Float32Array(length);
    let s = (k + 1) * 2654435761 >>> 0;
    for (let i = 0; i < length; i++) { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; g[i] = (s / 2 ** 32 - 0.5) * 0.01; }
    return g;
  });
}
